"""Suite-wide settings: the shared helpers on ``sys.path`` and single-threaded torch for the tiny test volumes.

``tests/helpers/`` is imported as ``helpers.<module>`` from every test folder (this folder is put on
``sys.path`` here, whatever pytest's import mode). On tiny tensors (10^3-10^4 voxels) OpenMP
threading costs more than it gains, and under any other load on the machine it slows convolutions
by several times. Subprocesses started by the tests inherit ``OMP_NUM_THREADS=1`` from here.
"""

import os
import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

# session fixtures used by several folders (model files, the prepared cohort)
pytest_plugins = ["helpers.fixtures"]
