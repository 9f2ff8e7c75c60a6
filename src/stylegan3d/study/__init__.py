"""Network-size study: train, evaluate and benchmark every point of a grid of config overrides.

Modules: :mod:`~stylegan3d.study.grid` (the grid and its points), :mod:`~stylegan3d.study.run`
(:class:`StudySettings`, training, evaluation and bench of each point) and
:mod:`~stylegan3d.study.report` (``study.md`` and ``study.png``).

A study is the cartesian product of grids such as ``width=8,16,32`` x ``z_dim=32,64`` on top
of a base preset. Each point is trained (in this process with :func:`stylegan3d.train.loop.train`,
or as a ``torchrun`` subprocess), evaluated with :func:`stylegan3d.metrics.evaluate` (same
metrics, generated-sample count and seeds for every point) and benchmarked (timed training
steps, counted FLOPs, peak memory). Results go to ``DIR/study.json``, ``DIR/study.md`` and
``DIR/study.png``.

Layout of a study directory::

    DIR/study.json  study.md  study.png  log.txt
    DIR/runs/<point>/point.json   # the point's settings, written before training
    DIR/runs/<point>/done.json    # results, written atomically after training + eval + bench
    DIR/runs/<point>/{config.json, checkpoints/, latest, log.txt, ...}   # the training run

Re-running the same command skips points with a matching ``done.json`` and resumes an
interrupted point from its run directory's ``latest`` checkpoint.
"""

from stylegan3d.study.grid import Point, grid_points, parse_grid, point_config
from stylegan3d.study.report import markdown_report, metric_keys, plot_study
from stylegan3d.study.run import FORMAT, VERSION, StudySettings, bench_point, run_study, torchrun_command

__all__ = [
    "FORMAT",
    "VERSION",
    "Point",
    "StudySettings",
    "bench_point",
    "grid_points",
    "markdown_report",
    "metric_keys",
    "parse_grid",
    "plot_study",
    "point_config",
    "run_study",
    "torchrun_command",
]
