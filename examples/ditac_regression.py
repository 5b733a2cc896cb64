"""The DiTAC paper's toy regression (the released ``regression_example``), DiTAC vs GELU vs ReLU.

Target y = Σ_j w_j·sin(A_j·x) on x ∈ [-1, 1]² with
A = [[9, -7], [-9, 11], [3, 13], [9, 9], [13, 5], [3, 19]] and
w = [0.4, 0.1, 0.15, 0.15, 0.1, 0.1]. Model: Linear(2, 50) → activation → Linear(50, 1)
(``mlp_double_2d``). Training: Adam (lr 5e-3, no weight decay), a batch of 98 fresh uniform
samples per iteration, 10,000 iterations, MSE loss. Every 500 iterations: MSE and R² on 500
fresh samples, as the released code prints them.

DiTAC settings of the example (``regression_example/params.py``): [a, b] = [-3, 3], 10 cells,
initialisation prior λs_init = 3, λv_init = 2, regulariser λs = 5, λv = 1 added to the loss
with λ_reg = 0.1 (the intended method; ``--lambda-reg`` changes it, ``--released-gradient``
reproduces the released backward instead). Evaluation path: ``--mode`` (default: the 2048-point LUT with linear
interpolation).

For a fair comparison, every activation sees the same data stream and the same initial linear
layers for a given seed (the linear layers are created before the activation, as in the
released code). Reported: the last evaluation (500 fresh samples) and the MSE on 10,000
held-out samples after training, mean ± std over seeds.

    python examples/ditac_regression.py                              # 3 seeds, 10k iterations
    python examples/ditac_regression.py --iterations 2000 --seeds 0 1 --activations ditac,gelu
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

import actlab

A = torch.tensor([[9.0, -7.0], [-9.0, 11.0], [3.0, 13.0], [9.0, 9.0], [13.0, 5.0], [3.0, 19.0]])
W = torch.tensor([0.4, 0.1, 0.15, 0.15, 0.1, 0.1])
LAMBDA_REG = 0.1  # the paper's λ_reg


def target(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(x @ A.T) @ W.unsqueeze(1)


def sample(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(n, 2, generator=generator) * 2 - 1
    return x, target(x)


def make_activation(name: str, args: argparse.Namespace) -> nn.Module:
    if name == "ditac":
        return actlab.DiTAC(
            a=-3.0,
            b=3.0,
            cells=10,
            mode=args.mode,
            lut_interp=args.lut_interp,
            init="prior",
            prior_length_scale=3.0,
            prior_variance=2.0,
            reg_length_scale=5.0,
            reg_variance=1.0,
            released_gradient_lambda=args.lambda_reg if args.released_gradient else None,
        )
    return actlab.create(name)


class MLP(nn.Module):
    """``mlp_double_2d``: Linear(2, 50) → activation → Linear(50, 1)."""

    def __init__(self, activation: str, args: argparse.Namespace, width: int = 50):
        super().__init__()
        self.fc1 = nn.Linear(2, width)
        self.fc2 = nn.Linear(width, 1)
        self.act = make_activation(activation, args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def r2(y: torch.Tensor, pred: torch.Tensor) -> float:
    return 1.0 - ((y - pred).square().sum() / (y - y.mean()).square().sum()).item()


def run(activation: str, seed: int, args: argparse.Namespace) -> dict:
    torch.manual_seed(seed)
    model = MLP(activation, args)
    data = torch.Generator().manual_seed(seed)
    evaluation = torch.Generator().manual_seed(10_000 + seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3, weight_decay=0.0)
    history = []
    start = time.perf_counter()
    for it in range(args.iterations):
        x, y = sample(args.batch_size, data)
        loss = nn.functional.mse_loss(model(x), y)
        if activation == "ditac" and not args.released_gradient and args.lambda_reg > 0:
            loss = loss + args.lambda_reg * model.act.regularization()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (it + 1) % args.eval_every == 0 or it + 1 == args.iterations:
            model.eval()
            with torch.no_grad():
                xe, ye = sample(500, evaluation)
                pred = model(xe)
                history.append({"it": it + 1, "mse": nn.functional.mse_loss(pred, ye).item(), "r2": r2(ye, pred)})
            model.train()
            if args.verbose:
                print(
                    f"  {activation} seed {seed} it {it + 1}: eval MSE {history[-1]['mse']:.5f} R² {history[-1]['r2']:.4f}"
                )
    model.eval()
    with torch.no_grad():
        xt, yt = sample(10_000, torch.Generator().manual_seed(99_999))
        pred = model(xt)
        test_mse, test_r2 = nn.functional.mse_loss(pred, yt).item(), r2(yt, pred)
    return {
        "activation": activation,
        "seed": seed,
        "final_eval_mse": history[-1]["mse"],
        "final_eval_r2": history[-1]["r2"],
        "best_eval_mse": min(h["mse"] for h in history),
        "test_mse": test_mse,
        "test_r2": test_r2,
        "seconds": time.perf_counter() - start,
        "history": history,
    }


def _mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.5f} ± {std:.5f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--activations", default="ditac,gelu,relu", help="comma-separated registry names")
    parser.add_argument("--batch-size", type=int, default=98)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--mode", default="lut", choices=["lut", "exact"], help="DiTAC evaluation path")
    parser.add_argument("--lut-interp", default="linear", choices=["linear", "nearest"])
    parser.add_argument("--lambda-reg", type=float, default=LAMBDA_REG, help="weight of DiTAC's smoothness penalty")
    parser.add_argument(
        "--released-gradient",
        action="store_true",
        help="reproduce the released code's backward (penalty inside backward, data gradient scaled by d)",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", metavar="PATH", help="write all runs (with histories) as JSON")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.activations.split(",") if n.strip()]
    runs = []
    for name in names:
        for seed in args.seeds:
            result = run(name, seed, args)
            runs.append(result)
            print(
                f"{name:>8} seed {seed}: final eval MSE {result['final_eval_mse']:.5f} (R² {result['final_eval_r2']:.4f}), "
                f"test MSE {result['test_mse']:.5f} (R² {result['test_r2']:.4f}), {result['seconds']:.0f} s",
                flush=True,
            )
    rule = "released-code gradient" if args.released_gradient else "explicit penalty"
    print(
        f"\n{args.iterations} iterations, seeds {args.seeds}; DiTAC: mode={args.mode}, lut_interp={args.lut_interp}, "
        f"init=prior, λ_reg={args.lambda_reg} ({rule})"
    )
    print(f"{'activation':>10}  {'final eval MSE (500)':>22}  {'test MSE (10k)':>22}  {'test R²':>8}")
    for name in names:
        mine = [r for r in runs if r["activation"] == name]
        print(
            f"{name:>10}  {_mean_std([r['final_eval_mse'] for r in mine]):>22}  "
            f"{_mean_std([r['test_mse'] for r in mine]):>22}  {statistics.mean(r['test_r2'] for r in mine):>8.4f}"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"args": vars(args), "runs": runs}, f, indent=2)


if __name__ == "__main__":
    main()
