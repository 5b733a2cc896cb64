"""Activations under DistributedDataParallel and FSDP2: 2 CPU processes, gloo, loopback only.

Every registered activation takes part, per channel and shared in turn. Each
wrapper trains for a few SGD steps on 2 ranks, each with half of every global
batch. Parameters must be identical across ranks; for activations that treat
each sample on its own they must also equal a single-process run on the whole
batch (activations normalising with batch statistics, like BatchNorm, cannot:
each rank sees its own half).
"""

import socket
import sys
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import actlab

from . import distributed_worker as w

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo"
)

WORLD_SIZE = 2
TIMEOUT_S = 240
LOOPBACK = ("127.0.0.1", "::ffff:127.0.0.1", "::1")


def loopback_interface() -> str:
    """The name of the loopback interface (``lo`` on Linux, ``lo0`` on macOS)."""
    names = [name for _, name in socket.if_nameindex()]
    for name in ("lo", "lo0"):
        if name in names:
            return name
    pytest.skip(f"no loopback interface among {names}")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    out_dir = tmp_path_factory.mktemp("ranks")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("GLOO_SOCKET_IFNAME", loopback_interface())  # gloo binds this interface only
        context = mp.spawn(w.worker, args=(WORLD_SIZE, str(out_dir)), nprocs=WORLD_SIZE, join=False)
        deadline = time.monotonic() + TIMEOUT_S
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                for process in context.processes:
                    process.kill()
                pytest.fail(f"the {WORLD_SIZE} ranks did not finish within {TIMEOUT_S} s")
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]


def runs(group: str) -> list[str]:
    if group not in w.groups():
        pytest.skip(f"no registered activation in group {group!r}")
    return [f"{group}/{wrapper}" for wrapper in w.WRAPPERS]


def test_every_registered_activation_takes_part():
    assert sorted(n for names in w.groups().values() for n in names) == actlab.list_activations()
    assert len(w.groups()["per_sample"]) >= 20


@pytest.mark.parametrize("group", ["per_sample", "batch_statistics"])
def test_parameters_are_identical_across_ranks(ranks, group):
    for run in runs(group):
        assert all(r["runs"][run]["ranks_equal"] for r in ranks), f"{run}: all_gather found ranks that differ"
        for key, value in ranks[0]["runs"][run]["parameters"].items():
            assert torch.isfinite(value).all(), f"{run}: {key}"
            assert torch.equal(value, ranks[1]["runs"][run]["parameters"][key]), f"{run}: {key}"


def test_per_sample_training_equals_a_single_process_run_on_the_global_batch(ranks):
    reference = w.train_single("per_sample")
    for run in runs("per_sample"):
        got = ranks[0]["runs"][run]["state"]
        assert got.keys() == reference.keys()
        for key, expected in reference.items():
            torch.testing.assert_close(got[key], expected, rtol=1e-5, atol=1e-6, msg=f"{run}: {key}")


@pytest.mark.parametrize("group", ["per_sample", "batch_statistics"])
def test_every_trainable_activation_took_part(ranks, group):
    """Each trainable activation's parameters moved, so the comparisons above cover them.

    (Per activation, not per parameter: some have near-zero gradients by design,
    e.g. SigmoidZorro's b at its defaults, about 1e-4 of the input gradient.)
    """
    model = w.build_model(group) if group in w.groups() else None
    for run in runs(group):
        final = ranks[0]["runs"][run]["parameters"]
        trainable = [i for i, act in enumerate(model.acts) if any(True for _ in act.parameters())]
        still = [
            type(model.acts[i]).__name__
            for i in trainable
            if all(torch.equal(final[f"acts.{i}.{n}"], p) for n, p in model.acts[i].named_parameters())
        ]
        assert trainable and still == [], f"{run}: activations that did not train: {still}"


@pytest.mark.parametrize("group", ["per_sample", "batch_statistics"])
def test_state_dicts_keep_the_activation_records(ranks, group):
    """Also under FSDP2, which swaps each module's class for a generated FSDP<Name> subclass."""
    for run in runs(group):
        expected = actlab.saved_activations(w.build_model(group).state_dict())
        assert len(expected) == sum(isinstance(m, actlab.Activation) for m in w.build_model(group).acts)
        for rank in ranks:
            assert rank["runs"][run]["records"] == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_every_socket_of_the_ranks_is_on_loopback(ranks):
    for rank in ranks:
        assert rank["gloo_socket_ifname"] in ("lo", "lo0")
        assert rank["tcp"], "the ranks talk over TCP: their sockets must be visible"
        for local, remote in rank["tcp"]:
            assert local in LOOPBACK, (local, remote)
            assert remote in (*LOOPBACK, "0.0.0.0", "::"), (local, remote)  # 0.0.0.0 / ::: listening
