"""Train a small CNN with SLAF vs ReLU on scikit-learn's 8x8 digits, over several seeds.

The SLAF network uses the official granularity: per-channel coefficients (k = 4) after the
convolutions, shared coefficients with per-neuron statistics (k = 5) after the dense layer, the
official initialisation (identity + N(0, 1) noise, bias 0.1), as in the paper's MNIST CNN. Everything
else (data split, optimizer, epochs) is identical between the two activations; the test accuracy
after the last epoch is reported (not the best epoch), as mean ± std over seeds.

    python examples/slaf_digits.py                  # 3 seeds, 30 epochs, ~1 min on 2 CPU cores
    python examples/slaf_digits.py --seeds 0 1 2 3 4 --epochs 50 --l1 1e-4
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

import actlab


def load_digits_split(seed: int = 0):
    """Standardised (N, 1, 8, 8) float tensors and labels; a stratified 80/20 split fixed by ``seed``."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise SystemExit("this example needs scikit-learn: pip install 'actlab[lab]'") from err
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target)
    train_idx, test_idx = train_test_split(
        torch.arange(len(y)).numpy(), test_size=0.2, stratify=y.numpy(), random_state=seed
    )
    mean, std = x[train_idx].mean(), x[train_idx].std()
    x = (x - mean) / std
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx]


def make_cnn(act: Callable[[str, int], nn.Module]) -> nn.Module:
    """conv 16 - act - conv 32 - act - avgpool - dense 64 - act - dense 10; ``act(kind, channels)``."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        act("conv", 16),
        nn.Conv2d(16, 32, 3, padding=1),
        act("conv", 32),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 64),
        act("dense", 64),
        nn.Linear(64, 10),
    )


def relu(kind: str, channels: int) -> nn.Module:
    return nn.ReLU()


def slaf(kind: str, channels: int) -> nn.Module:
    if kind == "conv":
        return actlab.SLAF(degree=4, num_parameters=channels)
    return actlab.SLAF(degree=5, num_features=channels)


def train_and_test(act, data, seed: int, epochs: int, batch_size: int, lr: float, l1: float) -> float:
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    model = make_cnn(act)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(y_train), generator=generator)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:  # batch statistics need two samples
                continue
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            if l1:
                loss = loss + actlab.slaf_l1_penalty(model, l1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        return float((model(x_test).argmax(1) == y_test).float().mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--l1", type=float, default=0.0, help="SLAF coefficient L1 strength (paper's hybrid run: 1e-4)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (tensors this small gain nothing from more)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the accuracies as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = load_digits_split()
    print(
        f"digits: {len(data[1])} train / {len(data[3])} test, {args.epochs} epochs, Adam lr {args.lr}, batch {args.batch_size}"
    )
    results: dict[str, list[float]] = {}
    for name, act in (("relu", relu), ("slaf", slaf)):
        start = time.perf_counter()
        results[name] = [
            train_and_test(act, data, s, args.epochs, args.batch_size, args.lr, args.l1 if name == "slaf" else 0.0)
            for s in args.seeds
        ]
        accs = results[name]
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        per_seed = ", ".join(f"{100 * a:.2f}" for a in accs)
        print(
            f"{name:>5}: test accuracy {100 * statistics.mean(accs):.2f} ± {100 * spread:.2f} %  (seeds {args.seeds}: {per_seed}; {time.perf_counter() - start:.0f} s)"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"args": vars(args), "accuracy": results}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
