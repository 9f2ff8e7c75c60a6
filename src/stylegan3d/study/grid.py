"""The study's grid: ``key=v1,v2`` items, their cartesian product and each point's config."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

from stylegan3d.config import Config, apply_overrides, load_preset
from stylegan3d.errors import UserError


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets, so ``resolution=[10,12,14],[20,24,28]`` works."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return [p.strip() for p in parts]


def parse_grid(items: Sequence[str]) -> dict[str, list[str]]:
    """``["width=8,16", "z_dim=32,64"]`` -> ``{"width": ["8", "16"], "z_dim": ["32", "64"]}`` (order kept)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--grid {item!r} must look like key=v1,v2,... (e.g. width=16,32,64)")
        key, values = item.split("=", 1)
        key = key.strip()
        if not key:
            raise UserError(f"--grid {item!r}: missing key")
        if key in grid:
            raise UserError(f"--grid {key} given twice; list all its values in one --grid")
        vals = _split_top_level(values)
        if not all(vals):
            raise UserError(f"--grid {item!r}: empty value")
        if len(set(vals)) != len(vals):
            raise UserError(f"--grid {item!r}: repeated value")
        grid[key] = vals
    if not grid:
        raise UserError("give at least one --grid key=v1,v2,...")
    return grid


@dataclass
class Point:
    """One configuration of the study: its grid values and a directory-safe name."""

    values: dict[str, str]

    @property
    def name(self) -> str:
        text = "_".join(f"{k}-{v}" for k, v in self.values.items())
        return re.sub(r"[^A-Za-z0-9._-]+", "", text.replace(",", "x"))

    @property
    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.values.items())

    @property
    def overrides(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.values.items()]


def grid_points(grid: dict[str, list[str]]) -> list[Point]:
    """The cartesian product of the grid, first key varying slowest."""
    keys = list(grid)
    return [Point(dict(zip(keys, combo, strict=True))) for combo in itertools.product(*grid.values())]


def point_config(base: str, overrides: Sequence[str], point: Point, kimg: float | None) -> Config:
    """Base preset + study-wide overrides + the point's grid values (+ ``train.kimg``), validated."""
    extra = [f"train.kimg={kimg}"] if kimg is not None else []
    return apply_overrides(load_preset(base), [*overrides, *point.overrides, *extra])
