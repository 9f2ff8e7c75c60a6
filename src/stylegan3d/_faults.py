"""Fault injection for the reliability tests, switched on by environment variables (all in one place).

* ``STYLEGAN3D_FAULT_NAN_STEPS=2,5``: the training steps whose generator loss is made NaN
  (:func:`nan_steps`, read by :class:`stylegan3d.train.loop.Trainer`);
* ``STYLEGAN3D_FAULT_KILL_IN_SAVE=N``: SIGKILL the process inside its N-th checkpoint write, after
  the temporary file is written and before it is renamed (:func:`kill_in_save`).

Unset, every hook is a no-op.
"""

from __future__ import annotations

import os
import signal

NAN_STEPS_ENV = "STYLEGAN3D_FAULT_NAN_STEPS"
KILL_IN_SAVE_ENV = "STYLEGAN3D_FAULT_KILL_IN_SAVE"

_saves_in_process = 0


def nan_steps() -> set[int]:
    """The step numbers listed in ``STYLEGAN3D_FAULT_NAN_STEPS`` (empty when unset)."""
    return {int(s) for s in os.environ.get(NAN_STEPS_ENV, "").split(",") if s.strip()}


def kill_in_save() -> None:
    """Count a checkpoint write; SIGKILL this process at the N-th when ``STYLEGAN3D_FAULT_KILL_IN_SAVE=N``."""
    global _saves_in_process
    _saves_in_process += 1
    target = os.environ.get(KILL_IN_SAVE_ENV)
    if target and int(target) == _saves_in_process:
        os.kill(os.getpid(), signal.SIGKILL)
