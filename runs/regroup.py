"""Copy a training checkpoint with another minibatch-std group size for the discriminator
(issue 18, variety study, stop 29):

    .venv/bin/python runs/regroup.py CKPT 16 RUN    # -> RUN/checkpoints/ckpt-<step>.safetensors + RUN/latest

The group size has no parameters (the std is taken over groups of ``d.mbstd_group`` samples of the
batch and appended as one feature map), so the tensors carry over unchanged; only the config
differs, and ``train --resume`` refuses model changes, hence this script. The new group must divide
the batch the run resumes with.
"""

from __future__ import annotations

import sys
from pathlib import Path

from stylegan3d.checkpoint import Sidecar, load_tensors, resolve_checkpoint, save_checkpoint


def main(src: str, group: int, run: str) -> None:
    found = resolve_checkpoint(src)
    meta = Sidecar.from_dict(found.meta.to_dict())
    old = meta.config["model"]["d"].get("mbstd_group", 4)
    meta.config["model"]["d"]["mbstd_group"] = group
    meta.extra["regroup_from"] = {"checkpoint": str(found.path), "mbstd_group": old}
    for k in Sidecar._WRITTEN:
        setattr(meta, k, None)
    out = save_checkpoint(Path(run), found.meta.step, load_tensors(found.path), meta, keep=2)
    print(f"wrote {out}: d.mbstd_group {old} -> {group}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
