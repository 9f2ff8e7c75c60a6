"""Suite-wide settings: single-threaded torch for the tiny test volumes.

On tiny tensors (10^3-10^4 voxels) OpenMP threading costs more than it gains, and under any
other load on the machine it slows convolutions by several times. Subprocesses started by the
tests inherit ``OMP_NUM_THREADS=1`` from here.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
