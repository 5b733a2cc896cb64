"""Synthetic specs, results and stored runs for tests that need no training."""

from __future__ import annotations

from actlab.lab.config import ActivationChoice, RunSpec
from actlab.lab.runner import RunResult
from actlab.lab.store import StoredRun


def make_spec(seed: int = 0, activation: str | ActivationChoice = "relu", **kw) -> RunSpec:
    base = dict(task="digits", model="mlp", epochs=2, batch_size=32, lr=1e-3)
    base.update(kw)
    choice = activation if isinstance(activation, ActivationChoice) else ActivationChoice(activation)
    return RunSpec(activation=choice, seed=seed, **base)


def make_result(
    spec: RunSpec,
    value: float = 0.9,
    status: str = "ok",
    error: str | None = None,
    *,
    epoch_time_s: float = 0.1,
    saved_bytes: int = 1000,
    activations: list | None = None,
) -> RunResult:
    ok = status == "ok"
    history = [
        {"epoch": e, "train_loss": 1.0 / e, "val_accuracy": value - 0.1 / e, "train_s": epoch_time_s, "eval_s": 0.01}
        for e in range(1, spec.epochs + 1)
    ]
    return RunResult(
        config_hash=spec.config_hash(),
        status=status,
        error=error,
        metric="accuracy",
        higher_is_better=True,
        test_metrics={"accuracy": value, "loss": 0.3} if ok else {},
        best_epoch=spec.epochs if ok else None,
        best_val=value if ok else None,
        history=history,
        epochs_run=spec.epochs,
        epoch_time_s=epoch_time_s if ok else None,
        saved_tensor_bytes=saved_bytes,
        activations=activations or [],
        environment={"actlab": "0.1.0", "torch": "2.x", "threads": 1, "device": "cpu"},
    )


def stored(spec: RunSpec, result: RunResult) -> StoredRun:
    return StoredRun(spec, result, "2026-01-01T00:00:00+00:00")
