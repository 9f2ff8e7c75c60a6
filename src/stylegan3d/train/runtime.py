"""Where and how a training process runs: the process group, the device and the precision."""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist

from stylegan3d.errors import UserError
from stylegan3d.util import resolve_device


@dataclass
class Dist:
    """Process-group facts (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this is rank 0 (which logs and writes files)."""
        return self.rank == 0

    def all_reduce_mean(self, t: torch.Tensor) -> torch.Tensor:
        """The mean of ``t`` over all processes (``t`` itself in a single process)."""
        if self.world == 1:
            return t
        t = t.clone()
        dist.all_reduce(t)
        return t / self.world


def setup_distributed(device: str) -> tuple[Dist, torch.device]:
    """Initialise torch.distributed from torchrun's environment (NCCL on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = str(resolve_device(device))
    if world == 1:
        return Dist(), torch.device(device)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local), dev


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> bf16 where the hardware supports it (CUDA bf16, CPU AVX512-BF16/AMX), else fp32."""
    if precision != "auto":
        if precision == "fp16" and device.type != "cuda":
            raise UserError("fp16 needs a CUDA device; use bf16 or fp32 on CPU")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    try:
        fast = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    except AttributeError:
        fast = False
    return "bf16" if fast else "fp32"


def autocast_context(precision: str, device: torch.device) -> AbstractContextManager:
    """``torch.autocast`` to bf16/fp16 for those precisions, else a no-op context."""
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return torch.autocast(device.type, dtype=dtype)
    return nullcontext()
