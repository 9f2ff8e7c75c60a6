"""Training data as the loop reads it: the dataset check, the shuffled sampler and the batch reader."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import torch

from stylegan3d.config import Config
from stylegan3d.errors import UserError


class InfiniteSampler:
    """Shuffled indices over epochs; the state (epoch, position) is saved in checkpoints."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch, self.pos = n, seed, 0, 0
        self._perm: list[int] | None = None

    def _order(self) -> list[int]:
        if self._perm is None:
            g = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
            self._perm = torch.randperm(self.n, generator=g).tolist()
        return self._perm

    def take(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            order = self._order()
            grab = order[self.pos : self.pos + k - len(out)]
            out.extend(grab)
            self.pos += len(grab)
            if self.pos >= self.n:
                self.epoch, self.pos, self._perm = self.epoch + 1, 0, None
        return out

    def peek(self, k: int) -> list[int]:
        """The indices the next ``take(k)`` will return, without advancing (for reading ahead)."""
        ahead = InfiniteSampler(self.n, self.seed)
        ahead.epoch, ahead.pos, ahead._perm = self.epoch, self.pos, self._perm
        return ahead.take(k)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos, "n": self.n, "seed": self.seed}

    def load_state_dict(self, s: dict) -> None:
        self.epoch, self.pos, self._perm = int(s["epoch"]), int(s["pos"]), None


def load_dataset(data, cfg: Config, labels: Path | None):
    """Open a prepared dataset directory, or accept a ready dataset object (e.g. in-memory for the bench)
    with ``geometry``, ``manifest``, ``labels``, ``__len__`` and ``__getitem__`` like VolumeDataset."""
    from stylegan3d.data.dataset import VolumeDataset

    ds = VolumeDataset(data, labels_csv=labels) if isinstance(data, str | os.PathLike) else data
    geo = ds.geometry
    m = cfg.model
    if list(geo["shape"]) != list(m.resolution) or int(geo.get("channels", 1)) != m.channels:
        raise UserError(
            f"dataset {data} holds {geo.get('channels', 1)}x{list(geo['shape'])} volumes but the model "
            f"expects {m.channels}x{list(m.resolution)}; prepare it with the same preset"
        )
    if m.c_dim and ds.labels is None:
        raise UserError(f"the model is conditional (c_dim={m.c_dim}); pass --labels CSV")
    if ds.labels is not None and ds.labels.shape[1] != m.c_dim:
        raise UserError(f"labels have {ds.labels.shape[1]} columns but the model has c_dim={m.c_dim}")
    return ds


def read_batch(ds, indices: list[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The batch ``indices`` of ``ds`` on ``device``: volumes ``[B, C, D, H, W]`` and labels or None
    (what the training loop reads, without reading ahead)."""
    return _collate([ds[i] for i in indices], ds.labels is not None, device)


def _collate(items: list, labelled: bool, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    if labelled:
        imgs = torch.stack([it[0] for it in items])
        labels = torch.stack([torch.as_tensor(it[1]) for it in items]).float()
        return imgs.to(device, non_blocking=True), labels.to(device)
    return torch.stack(items).to(device, non_blocking=True), None


class BatchReader:
    """Reads training batches like :func:`read_batch`, with ``workers`` threads reading the next batch
    (one volume per task) while the current step runs; ``workers=0`` reads in the training thread.

    The indices come from the sampler in the same order either way (``peek`` does not advance it,
    so checkpoints hold the same sampler state) and each volume is read by the same ``ds[i]``,
    so batches, runs and exact resume are bitwise identical to reading without threads. Threads
    rather than processes: reading the memory-mapped array releases the GIL and needs no copies.
    """

    def __init__(self, ds, device: torch.device, workers: int) -> None:
        self.ds, self.device = ds, device
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="stylegan3d-data") if workers > 0 else None
        self.pending: tuple[list[int], list[Future]] | None = None

    def get(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The batch ``indices``: read ahead by :meth:`read_ahead` when it asked for them, else now."""
        pending, self.pending = self.pending, None
        if pending is not None and pending[0] == list(indices):
            items = [f.result() for f in pending[1]]
        else:
            if pending is not None:
                for f in pending[1]:
                    f.cancel()
            items = [self.ds[i] for i in indices]
        return _collate(items, self.ds.labels is not None, self.device)

    def read_ahead(self, indices: list[int]) -> None:
        """Start reading the batch ``indices`` in the background (no-op without workers)."""
        if self.pool is not None:
            self.pending = (list(indices), [self.pool.submit(self.ds.__getitem__, i) for i in indices])

    def close(self) -> None:
        """Drop any batch read ahead and stop the threads."""
        self.pending = None
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
