"""Activations under DistributedDataParallel and FSDP2: 2 CPU processes, gloo, loopback only.

Every registered activation sits in one model (per channel and shared in
turn). Each wrapper trains it for a few SGD steps on 2 ranks, each with half of
every global batch; the parameters must be identical across ranks and equal to
a single-process run on the whole batch.
"""

import socket
import sys
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import actlab

from . import distributed_worker

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo"
)

WORLD_SIZE = 2
TIMEOUT_S = 240


def loopback_interface() -> str:
    """The name of the loopback interface (``lo`` on Linux, ``lo0`` on macOS)."""
    names = [name for _, name in socket.if_nameindex()]
    for name in ("lo", "lo0"):
        if name in names:
            return name
    pytest.skip(f"no loopback interface among {names}")


def _run_ranks(out_dir, monkeypatch) -> list[dict]:
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", loopback_interface())  # gloo binds this interface only
    context = mp.spawn(
        distributed_worker.worker,
        args=(WORLD_SIZE, str(out_dir)),
        nprocs=WORLD_SIZE,
        join=False,
    )
    deadline = time.monotonic() + TIMEOUT_S
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {WORLD_SIZE} ranks did not finish within {TIMEOUT_S} s")
    return [torch.load(out_dir / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        return _run_ranks(tmp_path_factory.mktemp("ranks"), monkeypatch)


@pytest.mark.parametrize("wrapper", ["ddp", "fsdp"])
def test_parameters_are_identical_across_ranks(ranks, wrapper):
    assert all(r[f"{wrapper}_ranks_equal"] for r in ranks), "all_gather found ranks that differ"
    for key, value in ranks[0][wrapper].items():
        assert torch.equal(value, ranks[1][wrapper][key]), key


@pytest.mark.parametrize("wrapper", ["ddp", "fsdp"])
def test_training_equals_a_single_process_run_on_the_global_batch(ranks, wrapper):
    reference = distributed_worker.train_single()
    initial = distributed_worker.build_model().state_dict()
    got = ranks[0][wrapper]
    assert got.keys() == reference.keys() == initial.keys() - {k for k in initial if k.endswith("_extra_state")}
    for key, expected in reference.items():
        torch.testing.assert_close(got[key], expected, rtol=1e-5, atol=1e-6, msg=f"{wrapper}: {key}")


def test_every_trainable_activation_took_part(ranks):
    """Each trainable activation's parameters moved, so the comparisons above cover them.

    (Per activation, not per parameter: some have near-zero gradients by design,
    e.g. SigmoidZorro's b at its defaults, about 1e-4 of the input gradient.)
    """
    model = distributed_worker.build_model()
    initial = model.state_dict()
    trainable = [i for i, act in enumerate(model.acts) if any(True for _ in act.parameters())]
    assert len(trainable) >= 10
    for wrapper in ("ddp", "fsdp"):
        final = ranks[0][wrapper]
        still = [
            i
            for i in trainable
            if all(
                torch.equal(final[f"acts.{i}.{n}"], initial[f"acts.{i}.{n}"])
                for n, _ in model.acts[i].named_parameters()
            )
        ]
        assert still == [], (
            f"{wrapper}: activations that did not train: {[type(model.acts[i]).__name__ for i in still]}"
        )


def test_fsdp_state_dict_keeps_the_activation_records(ranks):
    expected = actlab.saved_activations(distributed_worker.build_model().state_dict())
    assert len(expected) == sum(isinstance(m, actlab.Activation) for m in distributed_worker.build_model().acts)
    for rank in ranks:
        assert rank["fsdp_records"] == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_every_socket_of_the_ranks_is_on_loopback(ranks):
    for rank in ranks:
        assert rank["gloo_socket_ifname"] in ("lo", "lo0")
        assert rank["tcp"], "the ranks talk over TCP: their sockets must be visible"
        for local, remote in rank["tcp"]:
            assert local in ("127.0.0.1", "::ffff:127.0.0.1", "::1"), (local, remote)
            assert remote in ("127.0.0.1", "::ffff:127.0.0.1", "::1", "0.0.0.0", "::"), (local, remote)
