"""Data-parallel helpers over an :class:`accelerate.Accelerator` that also work with none (one process).

The trainers take ``accelerator=None`` for a plain one-process run; with an accelerator of N
processes, each rank handles a strided share of every global batch (``items[rank::N]``) and the
statistics that must be global (loss sums, whitening moments, KL, metrics) go through these
functions, so a run's numbers do not depend on the process count beyond floating-point noise.
"""
from __future__ import annotations

import os
from typing import Sequence, TypeVar

import torch

T = TypeVar("T")


def rank_and_world(accelerator) -> tuple[int, int]:
    """``(process index, number of processes)``; ``(0, 1)`` without an accelerator."""
    if accelerator is None:
        return 0, 1
    return accelerator.process_index, accelerator.num_processes


def is_main(accelerator) -> bool:
    """Whether this process writes files, checkpoints and tracking runs (rank 0; without an accelerator,
    the ``RANK`` a launcher gave the process, else yes)."""
    if accelerator is None:
        return int(os.environ.get("RANK", "0")) == 0
    return accelerator.is_main_process


def shard(items: Sequence[T], accelerator) -> list[T]:
    """This rank's strided share ``items[rank::world]`` of a global batch (all of it on one process)."""
    rank, world = rank_and_world(accelerator)
    return list(items[rank::world])


def all_sum(values: torch.Tensor, accelerator) -> torch.Tensor:
    """Element-wise sum over all ranks of a float tensor (a copy of ``values`` on one process)."""
    if accelerator is None or accelerator.num_processes == 1:
        return values.clone()
    return accelerator.reduce(values.to(accelerator.device).clone(), reduction="sum").to(values.device)


def all_max(value: float, accelerator) -> float:
    """The largest ``value`` over all ranks (NaN anywhere gives NaN)."""
    if accelerator is None or accelerator.num_processes == 1:
        return value
    t = accelerator.gather(torch.tensor([value], dtype=torch.float64, device=accelerator.device))
    return float("nan") if torch.isnan(t).any() else float(t.max())


def gather_strided(local: torch.Tensor, n_total: int, accelerator) -> torch.Tensor:
    """Reassemble a tensor sharded with :func:`shard` along dim 0: rank r holds rows r, r + W, ...

    ``local``: ``(ceil or floor(n_total / W), ...)`` rows of this rank. Returns ``(n_total, ...)``
    on every rank, in the original order.
    """
    rank, world = rank_and_world(accelerator)
    if world == 1:
        return local
    per_rank = -(-n_total // world)  # ceil
    padded = torch.zeros((per_rank, *local.shape[1:]), dtype=local.dtype)
    padded[:local.shape[0]] = local.detach().cpu()
    gathered = accelerator.gather(padded.to(accelerator.device)).cpu().view(world, per_rank, *local.shape[1:])
    out = torch.empty((n_total, *local.shape[1:]), dtype=local.dtype)
    for r in range(world):
        rows = len(range(r, n_total, world))
        out[r::world] = gathered[r, :rows]
    return out


def gather_rows(local: torch.Tensor, accelerator, pad_value: float | int = 0) -> torch.Tensor:
    """The global batch ``(B, W_max)`` from every rank's strided share ``(n_r, w_r)`` (2-D), in global order.

    Rows are padded on the right with ``pad_value`` to the widest share; rank r's row j is global
    row ``r + j * world``. One process: ``local`` itself.
    """
    rank, world = rank_and_world(accelerator)
    if world == 1:
        return local
    sizes = accelerator.gather(torch.tensor([local.shape[0], local.shape[1]], device=accelerator.device)).view(world, 2)
    rows, width = int(sizes[:, 0].max()), int(sizes[:, 1].max())
    padded = torch.full((rows, width), pad_value, dtype=local.dtype, device=accelerator.device)
    padded[:local.shape[0], :local.shape[1]] = local
    gathered = accelerator.gather(padded).view(world, rows, width).cpu()
    total = int(sizes[:, 0].sum())
    out = torch.full((total, width), pad_value, dtype=local.dtype)
    for r in range(world):
        n = int(sizes[r, 0])
        out[r::world] = gathered[r, :n]
    return out
