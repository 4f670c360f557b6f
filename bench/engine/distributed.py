"""Multi-process runs through torchrun (torch.distributed's own launcher).

`torchrun --nproc-per-node 4 -m bench run ... --out runs/x`: torchrun sets RANK, WORLD_SIZE
and LOCAL_RANK; each rank evaluates shard RANK/WORLD_SIZE (`bench.engine.shards`) into
`runs/x/shards/shard-RANK-of-WORLD_SIZE/` on `cuda:LOCAL_RANK` when `--device cuda`, then all
ranks meet at a barrier and rank 0 merges the shards into `runs/x` (`bench merge`'s code).
A killed rank is resumed by re-running the same torchrun command: every rank resumes its own
shard folder and the merge is redone. The process group (gloo on CPU, nccl on CUDA) is used for
the barriers only; no results travel through it, so the merged folder is identical to a
single-process run's.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.engine.shards import Shard

log = logging.getLogger("bench")

BARRIER_TIMEOUT = timedelta(days=7)
"""Ranks wait for the slowest shard at the barrier; a dataset can take days on CPUs."""


def world() -> tuple[int, int, int] | None:
    """(rank, world size, local rank) when launched by torchrun with more than one process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1 or "RANK" not in os.environ:
        return None
    return int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0"))


def shard_dir(out: Path, shard: Shard) -> Path:
    return out / "shards" / f"shard-{shard.index}-of-{shard.count}"


def run_ranks(request: Any, run_one: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    """This rank's shard, a barrier, rank 0's merge, a barrier; returns the merged manifest on
    rank 0 and this rank's shard manifest elsewhere."""
    import torch
    import torch.distributed as dist

    from bench.store.merge import merge_shards

    found = world()
    assert found is not None
    rank, size, local_rank = found
    options = dict(request.model_options)
    device = str(options.get("device") or "")
    if device == "cuda":
        options["device"] = f"cuda:{local_rank}"
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, timeout=BARRIER_TIMEOUT)
    try:
        shard = Shard(rank, size)
        own = replace(
            request,
            shard=shard,
            out=shard_dir(request.out, shard),
            model_options=options,
            progress=request.progress and rank == 0,
        )
        manifest = run_one(own)
        dist.barrier()
        if rank == 0:
            dirs = [shard_dir(request.out, Shard(i, size)) for i in range(size)]
            manifest = merge_shards(dirs, request.out, command=request.command)
            log.info("rank 0 merged %d shards into %s", size, request.out)
        dist.barrier()
        return manifest
    finally:
        dist.destroy_process_group()
