"""The training loop: one code path for one CPU, one GPU, or many processes under ``torchrun``.

Per step (as in StyleGAN2): G main (+ lazy path-length), then D main (+ lazy R1), G EMA,
ADA update. All randomness of a step (latents, mixing, noise maps, data order) is drawn from
generators seeded by ``(seed, step)``, so a run resumed from a checkpoint and a run on N
processes with the same global batch see the same numbers as one uninterrupted process.

The process set-up is in :mod:`stylegan3d.train.runtime` and the data reading in
:mod:`stylegan3d.train.batches`; what remains here (about 600 lines) is :class:`Trainer`, whose
construction, checkpoint state, step and loop share the state they advance, and its progress bar.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from stylegan3d import _faults
from stylegan3d import checkpoint as ckpt
from stylegan3d.config import Config
from stylegan3d.errors import CheckpointError, UserError
from stylegan3d.fileio import append_text, atomic_write_json, check_writable
from stylegan3d.nn import Discriminator, Generator, seeds_to_z, to_unit_range
from stylegan3d.train.batches import BatchReader, InfiniteSampler, load_dataset
from stylegan3d.train.loss import GeneratorStep, StepRandom, StyleGAN2Loss, ema_beta, make_adam, update_ema
from stylegan3d.train.runtime import autocast_context, resolve_precision, setup_distributed
from stylegan3d.util import progress_bar

SAMPLE_SEEDS = list(range(8))


class TrainingDiverged(UserError):
    """Too many consecutive steps with non-finite losses or gradients."""


@dataclass
class TrainState:
    step: int = 0
    cur_nimg: int = 0
    tick: int = 0
    bad_steps_total: int = 0
    bad_steps_consecutive: int = 0
    history: list[dict] = field(default_factory=list)


def _grads_finite(params) -> bool:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return True
    return bool(torch.isfinite(torch.stack([g.float().abs().sum() for g in grads]).sum()))


def _dataset_meta(ds) -> dict:
    """The checkpoint's ``dataset`` record: identity and world grid of the training data, and how
    its volumes were prepared (``frame``, ``intensity`` percentiles, ``mask_threshold``, copied from
    the manifest when it has them) so that projection prepares unseen scans the same way."""
    from stylegan3d.data.dataset import manifest_hash

    geo = ds.geometry
    manifest = ds.manifest
    meta = {
        "manifest_sha256": manifest_hash(manifest),
        "shape": list(geo["shape"]),
        "spacing": list(geo["spacing"]),
        "affine": np.asarray(geo["affine"]).tolist(),
        "channels": int(geo.get("channels", 1)),
        "size": len(ds),
    }
    if manifest.get("frame") is not None:
        meta["frame"] = manifest["frame"]
    intensity = manifest.get("intensity")
    if isinstance(intensity, dict):
        meta["intensity"] = {k: intensity[k] for k in ("lower_pct", "upper_pct") if k in intensity}
    settings = manifest.get("settings")
    mask = settings.get("mask") if isinstance(settings, dict) else None
    if isinstance(mask, dict) and mask.get("threshold") is not None and not mask.get("pattern"):
        meta["mask_threshold"] = mask["threshold"]  # a per-volume brain mask (pattern) replaces the threshold
    return meta


class Trainer:
    """Owns networks, optimisers, data and state; ``run()`` trains until ``cfg.train.kimg``."""

    def __init__(
        self,
        cfg: Config,
        data: Path,
        out: Path,
        resume: Path | ckpt.Checkpoint | None = None,
        device: str = "auto",
        labels: Path | None = None,
        progress: bool = True,
    ) -> None:
        self.dist, self.device = setup_distributed(device)
        self.out = Path(out)
        self.progress = progress and self.dist.main
        if self.dist.main:
            check_writable(self.out)  # a read-only or full location fails here, before any work
        resumed = ckpt.resolve_checkpoint(resume) if resume is not None else None
        if resumed is not None:
            resumed.require_network(cfg)
        self.cfg = cfg.validate()
        t = cfg.train
        if t.batch % self.dist.world:
            raise UserError(f"batch {t.batch} must be divisible by the number of processes {self.dist.world}")
        if t.ms_weight > 0 and t.batch // self.dist.world < 2:
            raise UserError(f"ms_weight needs at least 2 samples per process; batch {t.batch} on {self.dist.world}")
        self.precision = resolve_precision(t.precision, self.device)
        if t.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            if self.device.type == "cuda":
                torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True

        self.ds = load_dataset(data, cfg, labels)
        torch.manual_seed(t.seed)
        self.G = Generator(cfg.model).to(self.device).train()
        self.D = Discriminator(cfg.model).to(self.device).train()
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        # channels_last_3d pays with bf16/fp16 everywhere, and in fp32 on CPU (oneDNN's conv3d and its
        # backward are faster in that layout: 1.18x per training step at 4mm-f64, docs/benchmarks.md)
        self.set_channels_last(t.channels_last and (self.precision != "fp32" or self.device.type == "cpu"))
        if t.checkpointing:
            self._enable_checkpointing()

        from stylegan3d.train.augment import AdaController, AugmentPipe

        self.augment = None
        self.ada = None
        if t.aug != "none":
            self.augment = AugmentPipe(p=t.aug_p, xflip=t.aug_flip).to(self.device)
            if t.aug == "ada":
                self.ada = AdaController(self.augment, t.ada_target, t.ada_interval, t.ada_kimg, t.batch)
        # the lazy regularisers are folded into the main steps (no extra optimiser step every k
        # steps), so Adam runs at the configured lr and betas: the reference's k/(k+1) correction
        # only compensates for its separate regularisation steps
        self.opt_G = make_adam(self.G.parameters(), t.g_lr, t.betas, t.eps)
        self.opt_D = make_adam(self.D.parameters(), t.d_lr, t.betas, t.eps)
        self.G_step = GeneratorStep(self.G)
        self.G_step_ddp: nn.Module = self.G_step
        self.D_ddp: nn.Module = self.D
        if self.dist.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.G_step_ddp = nn.parallel.DistributedDataParallel(self.G_step, device_ids=ids, broadcast_buffers=False)
            self.D_ddp = nn.parallel.DistributedDataParallel(self.D, device_ids=ids, broadcast_buffers=False)
        self.loss = StyleGAN2Loss(
            self.G_step_ddp, self.D_ddp, self.D, t, self.augment, all_reduce_mean=self.dist.all_reduce_mean
        )
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.sampler = InfiniteSampler(len(self.ds), t.seed)
        self.reader = BatchReader(self.ds, self.device, t.workers)
        self.state = TrainState()
        self.dataset_meta = _dataset_meta(self.ds)
        self.nan_steps = _faults.nan_steps()
        self._forced: tuple[bool | None, bool | None] = (None, None)
        if resumed is not None:
            self._restore(resumed)

    # ------------------------------------------------------------------ state

    def set_channels_last(self, enabled: bool) -> None:
        """Run G, G_ema and D in ``channels_last_3d`` memory format (or not)."""
        for net in (self.G, self.G_ema):
            net.set_channels_last(enabled)
        self.D.channels_last = enabled

    def _enable_checkpointing(self) -> None:
        """Activation checkpointing of every synthesis layer and D block (memory for compute)."""
        from torch.utils.checkpoint import checkpoint

        def wrap(module: nn.Module) -> None:
            fwd = module.forward

            def run(*args, **kwargs):
                if torch.is_grad_enabled():
                    return checkpoint(fwd, *args, use_reentrant=False, **kwargs)
                return fwd(*args, **kwargs)

            module.forward = run

        for layer in self.G.synthesis.layers:
            wrap(layer)
        for block in self.D.blocks:
            wrap(block)

    def _tensors_and_meta(self) -> tuple[dict[str, torch.Tensor], ckpt.Sidecar]:
        tensors: dict[str, torch.Tensor] = {}
        for name, net in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            tensors.update(ckpt.module_tensors(name, net))
        og, og_meta = ckpt.optimizer_tensors("opt_G", self.opt_G)
        od, od_meta = ckpt.optimizer_tensors("opt_D", self.opt_D)
        rng, rng_meta = ckpt.rng_state()
        for part in (og, od, rng):
            tensors.update(part)
        tensors["state.pl_mean"] = self.loss.pl_mean.detach().float().cpu().reshape([]).clone()
        if self.augment is not None:
            tensors.update(ckpt.module_tensors("augment", self.augment))
        s = self.state
        state = ckpt.ResumeState(
            cur_nimg=s.cur_nimg,
            step=s.step,
            tick=s.tick,
            bad_steps_total=s.bad_steps_total,
            sampler=self.sampler.state_dict(),
            ada=self.ada.state_dict() if self.ada is not None else None,
            opt_G=og_meta,
            opt_D=od_meta,
            rng=rng_meta,
            precision=self.precision,
            world_size=self.dist.world,
        )
        meta = ckpt.Sidecar(
            config=self.cfg.to_dict(),
            version=ckpt.version(),
            kimg=s.cur_nimg / 1000,
            step=s.step,
            dataset=self.dataset_meta,
            metrics=s.history[-1] if s.history else {},
            state=state.to_dict(),
        )
        return tensors, meta

    def _restore(self, found: ckpt.Checkpoint) -> None:
        try:
            self._restore_state(found)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            reason = f"{type(e).__name__}: {e}"
            raise CheckpointError(f"checkpoint {found.path} lacks a usable training state ({reason})") from None

    def _restore_state(self, found: ckpt.Checkpoint) -> None:
        path = found.path
        tensors = ckpt.load_tensors(path)
        for name, net in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            ckpt.load_module(net, tensors, name, path)
        st = found.meta.resume_state()
        ckpt.load_optimizer(self.opt_G, tensors, "opt_G", st.opt_G)
        ckpt.load_optimizer(self.opt_D, tensors, "opt_D", st.opt_D)
        ckpt.set_rng_state(tensors, st.rng)
        self.loss.pl_mean = tensors["state.pl_mean"].to(self.device)
        if self.augment is not None and any(k.startswith("augment.") for k in tensors):
            ckpt.load_module(self.augment, tensors, "augment", path)
        if self.ada is not None and st.ada:
            self.ada.load_state_dict(st.ada)
        self.sampler.load_state_dict(st.sampler)
        self.state = TrainState(step=st.step, cur_nimg=st.cur_nimg, tick=st.tick, bad_steps_total=st.bad_steps_total)
        if (found.meta.dataset or {}).get("manifest_sha256") != self.dataset_meta["manifest_sha256"]:
            self.log(f"warning: resuming on a different dataset than {path} was trained on")
        self.log(f"resumed from {path} at kimg {self.state.cur_nimg / 1000:.3f} (step {self.state.step})")

    def save(self) -> Path | None:
        if not self.dist.main:
            return None
        tensors, meta = self._tensors_and_meta()
        return ckpt.save_checkpoint(self.out, self.state.step, tensors, meta, keep=self.cfg.train.keep_ckpts)

    # ------------------------------------------------------------------ logging

    def log(self, text: str) -> None:
        if not self.dist.main:
            return
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}"
        append_text(self.out / "log.txt", line + "\n")
        if not self.progress:
            print(line, flush=True)

    @torch.no_grad()
    def snapshot_images(self) -> np.ndarray:
        """Tri-planar grid of the fixed sample seeds from G_ema (const noise), saved as PNG."""
        from stylegan3d import viz

        z = seeds_to_z(SAMPLE_SEEDS, self.cfg.model.z_dim).to(self.device)
        c = None
        if self.cfg.model.c_dim:
            c = self.ds.labels[: len(SAMPLE_SEEDS)].float().to(self.device)
            c = c.repeat(math.ceil(len(SAMPLE_SEEDS) / len(c)), 1)[: len(SAMPLE_SEEDS)]
        vols = []
        for i in range(0, len(z), 4):
            with autocast_context(self.precision, self.device):
                x = self.G_ema(z[i : i + 4], None if c is None else c[i : i + 4], noise_mode="const")
            vols.append(to_unit_range(x).cpu())
        vols_t = torch.cat(vols)
        spacing = self.dataset_meta["spacing"]
        path = self.out / "samples" / f"fakes-{self.state.step:08d}.png"
        viz.save_contact_sheet(path, list(vols_t[:, 0].numpy()), ncols=4, spacing=spacing)
        return viz.grid([[viz.triplanar_strip(v[0].numpy(), spacing=spacing) for v in vols_t[:4]]])

    # ------------------------------------------------------------------ one step

    @staticmethod
    def _grad_sync(module: nn.Module, sync: bool):
        """Context for a forward *and* its backward: DDP's ``no_sync`` when ``sync`` is False.

        DDP decides at forward time whether the following backward all-reduces, so the forward
        must run inside ``no_sync`` too; wrapping only the backward would still all-reduce.
        """
        if not sync and isinstance(module, nn.parallel.DistributedDataParallel):
            return module.no_sync()
        return nullcontext()

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def _opt_step(self, opt: torch.optim.Optimizer, params: list[nn.Parameter], stats: dict) -> bool:
        if self.scaler is not None:
            self.scaler.step(opt)
            return True
        if _grads_finite(params) and all(math.isfinite(float(v)) for k, v in stats.items() if k.startswith("loss/")):
            opt.step()
            return True
        opt.zero_grad(set_to_none=True)
        return False

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """This process's slice of the next global batch of real volumes (and labels or None) on the
        device, as the training step reads it: advances the sampler and starts reading the batch after."""
        B, d = self.cfg.train.batch, self.dist
        batch = self.reader.get(self.sampler.take(B)[d.rank :: d.world])
        self.reader.read_ahead(self.sampler.peek(B)[d.rank :: d.world])  # read while this step finishes
        return batch

    @contextmanager
    def regularisation(self, pl: bool | None = None, r1: bool | None = None) -> Iterator[None]:
        """Within the block, run the path-length (``pl``) and R1 (``r1``) regularisers in every step
        (True) or in none (False) instead of every ``pl_interval``/``r1_interval`` steps (None: by the
        interval). A regulariser whose weight is 0 never runs. The config is left untouched."""
        saved, self._forced = self._forced, (pl, r1)
        try:
            yield
        finally:
            self._forced = saved

    def _due(self, which: int, interval: int) -> bool:
        """Whether regulariser ``which`` (0: path length, 1: R1) runs in this step."""
        forced = self._forced[which]
        return self.state.step % interval == 0 if forced is None else forced

    def _latents(self, rnd: StepRandom, n_global: int) -> tuple:
        m = self.cfg.model
        z = rnd.randn(n_global, m.z_dim, device=self.device)
        c = None
        if m.c_dim:
            idx = [rnd.randint(0, len(self.ds)) for _ in range(n_global)][rnd.rank :: rnd.world]
            c = self.ds.labels[idx].float().to(self.device)
        cutoff, z_mix = m.num_ws, None
        if self.cfg.train.style_mixing > 0 and rnd.uniform() < self.cfg.train.style_mixing:
            cutoff = rnd.randint(1, m.num_ws)
            z_mix = rnd.randn(n_global, m.z_dim, device=self.device)
        noise = [rnd.randn(n_global, *s[1:], device=self.device) for s in self.G.synthesis.noise_shapes()]
        return z, c, z_mix, cutoff, noise

    def train_step(self) -> dict:
        t = self.cfg.train
        s = self.state
        B, d = t.batch, self.dist
        # on CUDA draw on the device (fast); latents/noise are then reproducible per device type
        gen = torch.Generator(device=self.device).manual_seed(t.seed * 1_000_003 + s.step)
        rnd = StepRandom(gen, d.rank, d.world)
        torch.manual_seed((t.seed * 1_000_003 + s.step) * 64 + d.rank)  # augmentation randomness
        stats: dict[str, float] = {}
        ac = autocast_context(self.precision, self.device)
        inject_nan = s.step in self.nan_steps

        # ---- G: main loss (+ lazy path-length regularisation)
        self.G.requires_grad_(True)
        self.D.requires_grad_(False)
        self.opt_G.zero_grad(set_to_none=True)
        do_pl = t.pl_weight > 0 and self._due(0, t.pl_interval)
        z, c, z_mix, cutoff, noise = self._latents(rnd, B)
        with self._grad_sync(self.G_step_ddp, sync=not do_pl):
            with ac:
                loss, st = self.loss.g_main(z, c, z_mix, cutoff, noise)
            if inject_nan:
                loss = loss * float("nan")
                st["loss/G"] = loss.detach()
            self._backward(loss)
        stats.update(st)
        if do_pl:
            bp = max(B // t.pl_batch_shrink, d.world)
            bp -= bp % d.world
            zp, cp, zpm, cutp, noisep = self._latents(rnd, bp)
            pl_noise = rnd.randn(bp, self.cfg.model.channels, *self.cfg.model.resolution, device=self.device)
            with ac:
                loss_pl, st = self.loss.g_pl(zp, cp, zpm, cutp, noisep, pl_noise)
            self._backward(loss_pl)
            stats.update(st)
        g_ok = self._opt_step(self.opt_G, list(self.G.parameters()), stats)

        # ---- D: main loss (+ lazy R1)
        self.G.requires_grad_(False)
        self.D.requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        do_r1 = t.r1_gamma > 0 and self._due(1, t.r1_interval)
        z, c, z_mix, cutoff, noise = self._latents(rnd, B)
        with torch.no_grad(), ac:
            fake, _ = self.G_step(z, c, z_mix, cutoff, noise)
        with self._grad_sync(self.D_ddp, sync=False):
            with ac:
                loss_fake, st = self.loss.d_fake(fake.float(), c)
            self._backward(loss_fake)
        stats.update(st)
        real, real_c = self.next_batch()
        with ac:
            loss_real, st, real_logits = self.loss.d_real(real, real_c, do_r1)
        self._backward(loss_real)
        stats.update(st)
        d_ok = self._opt_step(self.opt_D, list(self.D.parameters()), stats)
        if self.scaler is not None:
            self.scaler.update()
        if self.ada is not None:
            self.ada.accumulate(real_logits)

        # ---- bookkeeping
        self.G.requires_grad_(False)
        self.D.requires_grad_(False)
        s.cur_nimg += B
        s.step += 1
        if d.world > 1:  # each rank tracked w over its slice; the mean over ranks is the global-batch value
            w_avg = self.G.mapping.w_avg
            w_avg.copy_(d.all_reduce_mean(w_avg))
        # beta from the images seen *before* this step, as stylegan2-ada-pytorch (step 0: G_ema = G)
        update_ema(self.G_ema, self.G, ema_beta(B, s.cur_nimg - B, t.ema_kimg, t.ema_rampup))
        if self.ada is not None:
            self.ada.step()
        if g_ok and d_ok:
            s.bad_steps_consecutive = 0
        else:
            s.bad_steps_total += 1
            s.bad_steps_consecutive += 1
            self.log(
                f"warning: non-finite loss or gradient at step {s.step - 1}; step skipped "
                f"({s.bad_steps_consecutive} in a row, {s.bad_steps_total} in total)"
            )
            if s.bad_steps_consecutive >= t.max_bad_steps:
                raise TrainingDiverged(
                    f"training stopped: {s.bad_steps_consecutive} consecutive non-finite steps at kimg "
                    f"{s.cur_nimg / 1000:.3f}; the last good checkpoint in {self.out / 'checkpoints'} is kept"
                )
        out = {k: float(v) for k, v in stats.items()}
        if self.augment is not None:
            out["aug/p"] = float(self.augment.p)
        return out

    # ------------------------------------------------------------------ loop

    def run(self, time_limit_s: float | None = None) -> Path | None:
        """Train until ``cfg.train.kimg`` (or ``time_limit_s`` seconds of wall time, whichever first)."""
        t, s = self.cfg.train, self.state
        t0 = time.time()
        total = int(t.kimg * 1000)
        if self.dist.main:
            atomic_write_json(self.out / "config.json", self.cfg.to_dict())
        writer = None
        if self.dist.main:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.out / "tensorboard"))
        self.log(
            f"training {self.cfg.name}: {len(self.ds)} volumes {self.dataset_meta['shape']}, batch {t.batch}, "
            f"{self.dist.world} process(es) on {self.device}, precision {self.precision}, target {t.kimg} kimg"
        )
        last = None
        tick_stats: dict[str, list[float]] = defaultdict(list)
        tick_start_nimg, tick_start_time = s.cur_nimg, time.time()
        progress = _Progress(total, s.cur_nimg, enabled=self.progress)
        try:
            with progress:
                done = s.cur_nimg >= total
                while not done:
                    stats = self.train_step()
                    for k, v in stats.items():
                        tick_stats[k].append(v)
                    progress.update(s.cur_nimg, stats)
                    done = s.cur_nimg >= total or (time_limit_s is not None and time.time() - t0 > time_limit_s)
                    if s.cur_nimg >= tick_start_nimg + t.tick_kimg * 1000 or done:
                        s.tick += 1
                        dt = time.time() - tick_start_time
                        row = {k: float(np.mean(v)) for k, v in tick_stats.items()}
                        row.update(
                            kimg=s.cur_nimg / 1000,
                            tick=s.tick,
                            step=s.step,
                            sec_per_kimg=dt / max((s.cur_nimg - tick_start_nimg) / 1000, 1e-9),
                            img_per_sec=(s.cur_nimg - tick_start_nimg) / max(dt, 1e-9),
                            lr_G=self.opt_G.param_groups[0]["lr"],
                            lr_D=self.opt_D.param_groups[0]["lr"],
                            peak_mem_gb=_peak_memory_gb(self.device),
                        )
                        s.history.append(row)
                        self._write_tick(row, writer)
                        tick_stats.clear()
                        tick_start_nimg, tick_start_time = s.cur_nimg, time.time()
                        if s.tick % t.snap_ticks == 0 or done:
                            img = self.snapshot_images() if self.dist.main else None
                            if writer is not None and img is not None:
                                writer.add_image("fakes", img[None].clip(0, 1), s.step)
                            last = self.save()
        finally:
            self.reader.close()
            if writer is not None:
                writer.close()
        if self.dist.main:
            self.log(
                f"done: {s.cur_nimg / 1000:.3f} kimg, {s.step} steps, {s.bad_steps_total} skipped; checkpoint {last}"
            )
        return last

    def _write_tick(self, row: dict, writer) -> None:
        if not self.dist.main:
            return
        keys = ["loss/G", "loss/D_real", "loss/D_fake", "loss/r1_penalty", "loss/pl_penalty", "aug/p"]
        parts = " ".join(f"{k.split('/')[-1]} {row[k]:.4f}" for k in keys if k in row)
        self.log(
            f"tick {row['tick']} kimg {row['kimg']:.3f} step {row['step']} sec/kimg {row['sec_per_kimg']:.1f} "
            f"img/s {row['img_per_sec']:.2f} mem {row['peak_mem_gb']:.2f}GB {parts}"
        )
        append_text(self.out / "stats.jsonl", json.dumps(row) + "\n")
        if writer is not None:
            for k, v in row.items():
                if k not in ("tick", "step"):
                    writer.add_scalar(k if "/" in k else f"progress/{k}", v, row["step"])
            writer.flush()


def _peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


class _Progress:
    """A rich progress bar in kimg with img/s, ETA and the latest losses (no-op when disabled)."""

    def __init__(self, total_nimg: int, start_nimg: int, enabled: bool) -> None:
        self.enabled = enabled
        self.total, self.start = total_nimg, start_nimg
        if enabled:
            from rich.progress import BarColumn, TimeElapsedColumn, TimeRemainingColumn

            self.bar = progress_bar(
                "[bold]train",
                BarColumn(),
                "{task.completed:.2f}/{task.total:.2f} kimg",
                TimeElapsedColumn(),
                "ETA",
                TimeRemainingColumn(),
                "{task.fields[info]}",
            )
            self.task = self.bar.add_task("train", total=total_nimg / 1000, completed=start_nimg / 1000, info="")

    def __enter__(self):
        if self.enabled:
            self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.__exit__(*exc)

    def update(self, nimg: int, stats: dict) -> None:
        if self.enabled:
            info = " ".join(
                f"{k.split('/')[-1]}={stats[k]:.3f}" for k in ("loss/G", "loss/D_real", "aug/p") if k in stats
            )
            self.bar.update(self.task, completed=nimg / 1000, info=info)


def train(
    cfg: Config,
    data: Path,
    out: Path,
    resume: Path | ckpt.Checkpoint | None = None,
    device: str = "auto",
    labels: Path | None = None,
    progress: bool = True,
    time_limit_s: float | None = None,
) -> Path | None:
    """Train ``cfg`` on a prepared dataset into run directory ``out``; returns the last checkpoint."""
    trainer = Trainer(cfg, data, out, resume=resume, device=device, labels=labels, progress=progress)
    try:
        return trainer.run(time_limit_s)
    finally:
        if trainer.dist.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
