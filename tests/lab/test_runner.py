"""One run: determinism, best-epoch selection, divergence, failures, measurements, optimizer groups."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

import actlab
from actlab.lab.config import ActivationChoice, RunSpec
from actlab.lab.runner import SavedTensorMeter, execute_run, parameter_groups

TINY = dict(
    task="digits", model="mlp", epochs=3, batch_size=64, lr=3e-3, limit=300, model_options={"hidden": 16}, threads=1
)


def spec(activation: str = "srs", seed: int = 0, **kw) -> RunSpec:
    return RunSpec(activation=ActivationChoice(activation), seed=seed, **{**TINY, **kw})


def outcome(result):
    """Everything a run computes, without the timings and memory (which legitimately vary)."""
    d = dataclasses.asdict(result)
    for key in ("total_time_s", "epoch_time_s", "peak_rss_bytes", "environment"):
        d.pop(key)
    for h in d["history"]:
        h.pop("train_s"), h.pop("eval_s")
    return d


def test_the_same_spec_twice_gives_bitwise_identical_results():
    s = spec("srs", seed=1)
    a, b = execute_run(s), execute_run(s)
    assert a.status == "ok", a.error
    assert outcome(a) == outcome(b)  # exact equality: metrics, losses, learned parameters
    assert outcome(execute_run(spec("srs", seed=2)))["test_metrics"] != outcome(a)["test_metrics"]


def test_test_metric_is_taken_at_the_best_validation_epoch():
    long = execute_run(spec("relu", epochs=4, lr=0.05))
    assert long.ok, long.error
    vals = [h["val_accuracy"] for h in long.history]
    assert long.best_epoch == vals.index(max(vals)) + 1
    assert long.best_val == max(vals)
    # Training is deterministic, so stopping at the best epoch reproduces the model that was tested.
    short = execute_run(spec("relu", epochs=long.best_epoch, lr=0.05))
    assert short.best_epoch == long.best_epoch
    assert short.test_metrics == long.test_metrics


def test_history_timings_memory_and_snapshots_are_recorded():
    r = execute_run(spec("srs", epochs=2))
    assert r.ok and r.epochs_run == 2 and len(r.history) == 2
    assert set(r.history[0]) >= {"epoch", "train_loss", "val_accuracy", "val_loss", "train_s", "eval_s"}
    assert r.metric == "accuracy" and r.higher_is_better is True
    assert set(r.test_metrics) >= {"accuracy", "loss"}
    assert r.epoch_time_s > 0 and r.total_time_s >= sum(h["train_s"] for h in r.history)
    assert r.peak_rss_bytes > 50 * 2**20  # torch alone is larger than this
    assert r.saved_tensor_bytes > 0
    assert r.num_parameters == 64 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10 + 4  # two SRS sites with (alpha, beta)
    assert r.activation_parameters == 4
    sites = [s["site"] for s in r.activations]
    assert sites == ["layers.0.act", "layers.1.act"]
    assert all(s["trainable"] and set(s["parameters"]) == {"alpha", "beta"} for s in r.activations)
    assert len(r.activations[0]["x"]) == len(r.activations[0]["y"][0]) == 201
    assert r.environment["actlab"] == actlab.__version__


def test_a_diverging_run_is_recorded_as_failed_with_its_epoch():
    r = execute_run(spec("relu", optimizer="sgd", lr=1e12, epochs=3))
    assert r.status == "failed"
    assert r.error.startswith("diverged at epoch 1")
    assert r.epochs_run == 1 and len(r.history) == 1  # the history up to the failure is kept
    assert r.test_metrics == {}


def test_an_exception_inside_a_run_is_returned_not_raised():
    r = execute_run(spec("relu", model_options={"hidden": 16, "no_such_option": 1}))
    assert r.status == "failed"
    assert "no_such_option" in r.error and "Traceback" in r.error


def test_the_run_restores_the_callers_torch_settings():
    threads = torch.get_num_threads()
    execute_run(spec("relu", epochs=1, threads=1))
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()


def test_progress_is_reported_after_every_epoch():
    seen = []
    execute_run(spec("relu", epochs=3), progress=lambda e, n, m: seen.append((e, n, "val_accuracy" in m)))
    assert seen == [(1, 3, True), (2, 3, True), (3, 3, True)]


def test_weight_decay_never_touches_activation_parameters():
    model = nn.Sequential(nn.Linear(3, 4), actlab.create("srs"), nn.Linear(4, 2), nn.ReLU())
    groups = parameter_groups(model, 0.1)
    decayed = {id(p) for p in groups[0]["params"]}
    exempt = {id(p) for p in groups[1]["params"]}
    assert groups[0]["weight_decay"] == 0.1 and groups[1]["weight_decay"] == 0.0
    assert exempt == {id(model[1].raw_alpha), id(model[1].raw_beta)}
    assert decayed == {id(p) for p in (*model[0].parameters(), *model[2].parameters())}


def test_saved_tensor_meter_counts_each_saved_storage_once_and_skips_parameters():
    x = torch.randn(1000, requires_grad=True)
    w = nn.Parameter(torch.randn(1000))
    meter = SavedTensorMeter(exclude=[w])
    with meter():
        y = torch.exp(x)  # saves its output: 4000 bytes
        z = (y * w).sum()  # saves y (already counted) and w (a parameter: excluded)
    z.backward()
    assert meter.bytes == 1000 * 4
    assert torch.allclose(x.grad, torch.exp(x) * w)  # the hooks did not change the gradients


@pytest.mark.parametrize("device", ["cuda"])
@pytest.mark.gpu
def test_a_gpu_run_reports_cuda_memory(device):
    r = execute_run(spec("srs", epochs=1, device=device))
    assert r.ok, r.error
    assert r.cuda_peak_bytes > 0 and r.environment["device"].startswith("cuda")
