"""Command line interface (``stylegan3d`` / ``python -m stylegan3d``)."""
