"""The processes of tests/test_distributed.py: 2 CPU ranks, gloo, loopback only.

Kept free of pytest so that the spawned processes import little. Each rank
trains models holding every registered activation with DistributedDataParallel
and with FSDP2 (``fully_shard``), on its half of every global batch, and saves
what it ended with. Activations that treat each sample on its own go in one
model, which must train exactly like a single process on the whole batch
(:func:`train_single`); activations that normalise with batch statistics
(SLAF) go in another, which cannot (each rank sees its own batch, as with
BatchNorm) but must still train, identically on every rank.
"""

from __future__ import annotations

import datetime
import functools
import gc
import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

import actlab

from .model_zoo import make

WIDTH = 8
STEPS = 3
GLOBAL_BATCH = 8
LR = 0.05
#: Large enough that even Zorro's far-tail parameter b moves visibly in a few steps.
ACTIVATION_LR = 1.0
WRAPPERS = ("ddp", "fsdp")


def _per_sample(name: str) -> bool:
    """Whether the activation, in training mode, treats each sample on its own."""
    x = 3 * torch.randn(GLOBAL_BATCH, WIDTH, generator=torch.Generator().manual_seed(0))
    outputs = []
    for batch in (x, x[: GLOBAL_BATCH // 2]):
        torch.manual_seed(0)
        act = make(name, WIDTH).train()
        with torch.no_grad():
            outputs.append(act(batch)[: GLOBAL_BATCH // 2])
    return torch.equal(outputs[0], outputs[1])


@functools.cache
def groups() -> dict[str, list[str]]:
    """Registered activations split by :func:`_per_sample` (empty groups left out)."""
    names = actlab.list_activations()
    split = {
        "per_sample": [n for n in names if _per_sample(n)],
        "batch_statistics": [n for n in names if not _per_sample(n)],
    }
    return {group: members for group, members in split.items() if members}


class Branches(nn.Module):
    """Each activation in its own branch (per channel and shared in turn), summed."""

    def __init__(self, names: list[str]):
        super().__init__()
        self.inputs = nn.ModuleList(nn.Linear(WIDTH, WIDTH) for _ in names)
        self.acts = nn.ModuleList(make(name, WIDTH if i % 2 == 0 else None) for i, name in enumerate(names))
        self.head = nn.Linear(WIDTH, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(sum(act(layer(x)) for layer, act in zip(self.inputs, self.acts)) / len(self.acts))


def build_model(group: str) -> Branches:
    torch.manual_seed(0)
    model = Branches(groups()[group])
    with torch.no_grad():  # away from the initial values, so that every parameter matters
        for p in actlab.activation_parameters(model):
            p.add_(torch.randn_like(p) * 0.05)
    return model


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    # Inputs spread enough to reach every region of every activation (Zorro's humps start outside [0, 1]).
    return [
        (3 * torch.randn(GLOBAL_BATCH, WIDTH, generator=g), torch.randn(GLOBAL_BATCH, 1, generator=g))
        for _ in range(STEPS)
    ]


def _train(model: nn.Module, rank: int, world_size: int) -> None:
    opt = torch.optim.SGD(actlab.param_groups(model, weight_decay=1e-3, activation_lr=ACTIVATION_LR), lr=LR)
    shard = GLOBAL_BATCH // world_size
    for x, y in batches():
        x, y = x[rank * shard : (rank + 1) * shard], y[rank * shard : (rank + 1) * shard]
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def _full(tensors) -> dict[str, torch.Tensor]:
    """Full tensors (DTensor shards gathered, a collective), extra state left out."""
    return {
        k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone()
        for k, v in tensors
        if isinstance(v, torch.Tensor)
    }


def train_single(group: str) -> dict[str, torch.Tensor]:
    """The single-process run on the whole global batch (parameters and buffers)."""
    model = build_model(group)
    _train(model, 0, 1)
    return _full(model.state_dict().items())


def _tcp_endpoints() -> list[tuple[str, str]]:
    """(local address, remote address) of every TCP socket this process holds (Linux)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    endpoints = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        if not os.path.exists(table):
            continue
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[9] in inodes:
                    endpoints.append((_address(fields[1], family), _address(fields[2], family)))
    return endpoints


def _address(field: str, family: int) -> str:
    host = bytes.fromhex(field.split(":")[0])
    # /proc/net/tcp prints each 32-bit word in host (little-endian) order.
    host = b"".join(host[i : i + 4][::-1] for i in range(0, len(host), 4))
    return socket.inet_ntop(family, host)


def _all_ranks_equal(tensors: dict[str, torch.Tensor], world_size: int) -> bool:
    flat = torch.cat([v.reshape(-1).float() for v in tensors.values()])
    gathered = [torch.empty_like(flat) for _ in range(world_size)]
    dist.all_gather(gathered, flat)
    return all(torch.equal(gathered[0], g) for g in gathered[1:])


def _wrap(model: Branches, wrapper: str, mesh) -> nn.Module:
    from torch.distributed.fsdp import fully_shard
    from torch.nn.parallel import DistributedDataParallel

    if wrapper == "ddp":
        return DistributedDataParallel(model)
    for act in model.acts:
        if any(True for _ in act.parameters()):
            fully_shard(act, mesh=mesh)  # activation parameters sharded on their own
    return fully_shard(model, mesh=mesh)


def worker(rank: int, world_size: int, out_dir: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        # A file rendezvous: torch's TCPStore listens on all interfaces ("::"),
        # whatever host it is given (checked with torch 2.13), so it is not used.
        init_method=f"file://{Path(out_dir) / 'rendezvous'}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        result = {"runs": _train_every_run(rank, world_size, init_device_mesh("cpu", (world_size,)))}
        result["tcp"] = _tcp_endpoints()
        result["gloo_socket_ifname"] = os.environ.get("GLOO_SOCKET_IFNAME")
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
        dist.barrier()
    finally:
        # The wrappers' hooks keep the process group alive through reference cycles; left to the
        # collection at interpreter exit, gloo's worker threads can be stopped mid-call and abort
        # the process (see the README's DDP example).
        gc.collect()
        dist.destroy_process_group()


def _train_every_run(rank: int, world_size: int, mesh) -> dict:
    """Every group under every wrapper: the results as plain tensors (the models die with this frame)."""
    runs = {}
    for group in groups():
        for wrapper in WRAPPERS:
            model = build_model(group)
            _train(_wrap(model, wrapper, mesh), rank, world_size)
            state = model.state_dict()
            parameters = _full(model.named_parameters())
            runs[f"{group}/{wrapper}"] = {
                "parameters": parameters,
                "state": _full(state.items()),
                "ranks_equal": _all_ranks_equal(parameters, world_size),
                "records": actlab.saved_activations(state),
            }
    return runs
