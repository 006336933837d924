"""Training on several processes with torch.distributed, as `torchrun` starts them.

A process is part of a distributed run when torchrun's environment (WORLD_SIZE, RANK, LOCAL_RANK) is set;
without it `process_group()` yields None and the trainer runs exactly as a single process does. The group uses
NCCL on CUDA (one GPU per process: LOCAL_RANK picks it) and gloo on the CPU.

How the work is split: the training set through a DistributedSampler (a shuffled shard per rank, `set_epoch`
each epoch) under DistributedDataParallel; the push, push-set scores and evaluation through `BatchShard`, which
gives each rank every N-th batch of the one-process batching, so every image is computed in the same batch as in
a one-process run and the gathered results are the same bit for bit. Rank 0 alone writes files."""
from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Deque, Dict, Iterator, List, Optional, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from .data import leave_interrupts_to_the_main_process
from .errors import TrainerError
from .runtime import select_device

ENVIRONMENT = ("WORLD_SIZE", "RANK", "LOCAL_RANK")


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in ENVIRONMENT)


def restart_count() -> int:
    """How often torchrun has restarted this worker group (--max-restarts): a restart resumes the run."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0)


@dataclass
class Group:
    """This process's place in the distributed run, and the collectives the trainer needs."""
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    # The tensors of the last collectives, kept until the group is destroyed. Gloo's worker thread lets go of a
    # collective's tensors only after the collective has returned; had Python let go first, that thread then needs
    # the GIL to free them, and destroy_process_group holds the GIL while it waits for the thread: on torch 2.6 about
    # 1 in 4 two-process runs never ended so. Kept here, they are freed by Python after the destroy.
    _held: Deque[torch.Tensor] = field(default_factory=lambda: deque(maxlen=16), repr=False, compare=False)

    def _hold(self, *tensors: torch.Tensor) -> None:
        self._held.extend(tensors)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        dist.barrier()

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise sum over all ranks (a new tensor on every rank)."""
        total = values.clone().to(self.device)
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        self._hold(total)
        return total

    def sum_numbers(self, values: Sequence[float]) -> List[float]:
        return self.sum(torch.tensor(list(values), dtype=torch.float64)).cpu().tolist()

    def gather_objects(self, value: Any) -> List[Any]:
        """Every rank's picklable `value`, in rank order, on every rank."""
        values: List[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def gather(self, values: torch.Tensor) -> torch.Tensor:
        """[world_size, *values.shape]: every rank's tensor, in rank order (same shape on every rank)."""
        values = values.contiguous().to(self.device)
        parts = [torch.empty_like(values) for _ in range(self.world_size)]
        dist.all_gather(parts, values)
        self._hold(values, *parts)
        return torch.stack(parts)

    def broadcast_module(self, module: nn.Module) -> None:
        """Rank 0's parameters and buffers on every rank (batch-norm statistics differ after a DDP epoch)."""
        with torch.no_grad():
            for tensor in list(module.parameters()) + list(module.buffers()):
                data = tensor.data
                dist.broadcast(data, src=0)
                self._hold(data)

    def wrap(self, module: nn.Module) -> nn.Module:
        """DistributedDataParallel over the parameters that are trainable now (so build one per phase)."""
        ids = [self.local_rank] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def train_loader(self, dataset: Dataset, batch_size: int, seed: int, num_workers: int) -> DataLoader:
        """This rank's shuffled shard of the training set: `set_epoch(epoch)` on its sampler reshuffles.
        `batch_size` is the recipe's, the global batch: each rank takes its share, so a recipe makes the same
        number of optimizer steps of the same batch size on any number of processes."""
        if batch_size % self.world_size:
            raise TrainerError(f"--batch-size {batch_size} is the global batch and must divide evenly among the "
                               f"{self.world_size} processes")
        sampler = DistributedSampler(dataset, num_replicas=self.world_size, rank=self.rank, shuffle=True, seed=seed)
        return DataLoader(dataset, batch_size=batch_size // self.world_size, sampler=sampler,
                          num_workers=num_workers, worker_init_fn=leave_interrupts_to_the_main_process)

    def shard(self, dataset: Dataset, batch_size: int, num_workers: int = 0) -> "BatchShard":
        return BatchShard(dataset, batch_size, self.rank, self.world_size, num_workers)


class BatchShard:
    """Rank r's part of an in-order pass: batches r, r + N, r + 2N, ... of the one-process batching."""

    def __init__(self, dataset: Dataset, batch_size: int, rank: int, world_size: int, num_workers: int = 0):
        size = len(dataset)  # type: ignore[arg-type]
        batches = [list(range(start, min(start + batch_size, size))) for start in range(0, size, batch_size)]
        self.size = size
        self.loader = DataLoader(dataset, batch_sampler=batches[rank::world_size], num_workers=num_workers)

    def __iter__(self) -> Iterator:
        return iter(self.loader)

    def __len__(self) -> int:
        return len(self.loader)


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Reshuffle a DistributedSampler's shard for `epoch` (other samplers draw from the seeded RNG)."""
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)


def _backend_and_device(device_name: str, local_rank: int) -> tuple:
    device = select_device(device_name)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise TrainerError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible: "
                               f"start at most one process per GPU (--nproc_per_node)")
        torch.cuda.set_device(local_rank)
        return "nccl", torch.device("cuda", local_rank)
    return "gloo", device


def _store_of_this_attempt(world_size: int, timeout: dt.timedelta) -> Optional[dist.Store]:
    """The key-value store of this attempt's group, where torchrun's agent hosts one store for every attempt.
    torchrun 2.5 and later (c10d rendezvous) keeps that store across restarts while its workers do not tell the
    attempts apart, so a restarted group could read the addresses the killed one left there and then fail to
    connect or wait forever. Keys under the restart count keep each attempt to its own. None where the workers
    host a new store for every attempt themselves (torch 1.13's c10d rendezvous): the default is right there."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != str(True):
        return None
    agent_store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world_size,
                                is_master=False, timeout=timeout)
    return dist.PrefixStore(f"protopnet/attempt-{restart_count()}", agent_store)


@contextlib.contextmanager
def process_group(device_name: str, timeout_minutes: float = 60.0) -> Iterator[Optional[Group]]:
    """The process group of a torchrun worker (None when not launched by torchrun), destroyed on exit.
    The timeout bounds how long a rank waits for the others (rank 0 alone renders and publishes at the end)."""
    if not launched_by_torchrun():
        yield None
        return
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    backend, device = _backend_and_device(device_name, local_rank)
    timeout = dt.timedelta(minutes=timeout_minutes)
    store = _store_of_this_attempt(world_size, timeout)
    if store is None:
        dist.init_process_group(backend, timeout=timeout)
    else:
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, timeout=timeout)
    try:
        yield Group(rank, world_size, local_rank, device)
    finally:
        dist.destroy_process_group()


def sharded_scores(model: nn.Module, shard: BatchShard, group: Group, width: int) -> torch.Tensor:
    """[N, width] model similarities of the whole data set on every rank, each rank computing its shard's rows.
    A row is written by exactly one rank and zero by the others, so the sum is that rank's value exactly."""
    rows = torch.zeros((shard.size, width), device=group.device)
    with torch.no_grad():
        for images, _, indices in shard:
            rows[indices.to(group.device)] = model(images.to(group.device)).similarities
    return group.sum(rows)


def sharded_predictions(model: nn.Module, shard: BatchShard, group: Group) -> Dict[str, List[int]]:
    """Labels and predicted classes of the whole data set, in order, on every rank."""
    labels = torch.zeros(shard.size, dtype=torch.long, device=group.device)
    predictions = torch.zeros(shard.size, dtype=torch.long, device=group.device)
    model.eval()
    with torch.no_grad():
        for images, batch_labels, indices in shard:
            out = model(images.to(group.device))
            logits = out.logits if hasattr(out, "logits") else out
            indices = indices.to(group.device)
            predictions[indices] = logits.argmax(1)
            labels[indices] = batch_labels.to(group.device)
    return {"labels": group.sum(labels).tolist(), "predictions": group.sum(predictions).tolist()}
