"""Self-contained NiiVue viewer pages: the vendored NiiVue bundle and the volumes (NIfTI, base64) inline.

A page holds *sections* (shown one at a time as tabs, so the browser never needs more than a few
WebGL contexts). A section has *slots* (viewers side by side: multiplanar + 3D render, crosshairs
linked in world coordinates) and *options*, each naming the volume every slot shows: one option
(generated samples, projection target / reconstruction / |error|), a grid of options (style-mixing
cells) or a slider (interpolation frames).

Volumes are stored as gzipped NIfTI-1 with ``int16`` data and a scale slope/intercept (the page says
so): at most range/65534 from the original float value, about half the size of float32.

The page writes a JSON status into ``<pre id="status">`` once NiiVue has loaded the volumes (used
by the browser tests). ``#section=N&option=K&mm=x,y,z`` in the URL picks the section, option and
crosshair position.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from stylegan3d.errors import UserError
from stylegan3d.fileio import atomic_write_text

NIIVUE_VERSION = "0.69.0"
NIIVUE_SHA256 = "47b896b77ec4a5be3ef1949c33ad393b6f45629921f326c279000bcf51bdb4af"
ENCODING_NOTE = "volumes embedded as gzipped NIfTI-1, int16 with scale slope/intercept (error <= range/65534)"


@dataclass
class Volume:
    """One volume of a page: ``data [X, Y, Z]`` (voxel order of ``affine``), 4x4 voxel-to-RAS-mm ``affine``.

    ``window`` is the default display range (cal_min, cal_max); None = robust range of this volume.
    """

    name: str
    data: np.ndarray
    affine: np.ndarray
    window: tuple[float, float] | None = None
    colormap: str = "gray"


@dataclass
class Section:
    """A tab of the page: ``slots`` titles the viewers side by side; ``options`` lists, per option, a
    label and one volume index per slot. ``control`` is ``none`` (one option), ``grid`` (buttons laid out
    by each option's ``row``/``col``) or ``slider``."""

    title: str
    slots: list[str]
    options: list[dict[str, Any]]
    control: str = "none"
    note: str = ""


@dataclass
class Page:
    """A whole viewer page: volumes (shared by the sections) and sections."""

    title: str
    volumes: list[Volume] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    note: str = ""

    def add(self, volume: Volume) -> int:
        """Append a volume; returns its index."""
        self.volumes.append(volume)
        return len(self.volumes) - 1


def robust_window(arrays: list[np.ndarray], lo_pct: float = 0.5, hi_pct: float = 99.5) -> tuple[float, float]:
    """Display range shared by ``arrays``: percentiles of the finite voxels (0 kept as the floor of
    non-negative data, so background stays black)."""
    vals = np.concatenate([np.asarray(a, dtype=np.float32)[np.isfinite(a)].ravel() for a in arrays])
    if vals.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(vals, [lo_pct, hi_pct]))
    if float(vals.min()) >= 0:
        lo = 0.0
    if not hi > lo:
        hi = lo + (abs(lo) if lo else 1.0)
    return lo, hi


def encode_nifti(data: np.ndarray, affine: np.ndarray) -> bytes:
    """Gzipped NIfTI-1 bytes of a 3D array: int16 with slope/intercept, sform = qform = ``affine`` (code 2)."""
    import nibabel as nib

    a = np.asarray(data, dtype=np.float32)
    if a.ndim != 3:
        raise UserError(f"the viewer shows 3D volumes, got shape {list(a.shape)}")
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    img = nib.Nifti1Image(np.ascontiguousarray(a), np.asarray(affine, dtype=np.float64))
    img.set_data_dtype(np.int16)
    img.header.set_xyzt_units("mm")
    img.set_sform(img.affine, code=2)
    img.set_qform(img.affine, code=2)
    return gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)


@lru_cache(maxsize=1)
def niivue_bundle() -> str:
    """The vendored NiiVue UMD bundle (checked against its pinned SHA-256)."""
    raw = resources.files("stylegan3d.viewer").joinpath("vendor/niivue.umd.js").read_bytes()
    if hashlib.sha256(raw).hexdigest() != NIIVUE_SHA256:
        raise UserError("the vendored NiiVue bundle does not match its pinned checksum (reinstall stylegan3d)")
    text = raw.decode("utf-8")
    if "</script" in text.lower():
        raise UserError("the vendored NiiVue bundle contains '</script' and cannot be inlined")
    return text


def _viewer_js() -> str:
    return resources.files("stylegan3d.viewer").joinpath("viewer.js").read_text(encoding="utf-8")


def _json_for_script(obj: Any) -> str:
    """JSON safe inside ``<script type=application/json>`` (no ``</`` or ``<!--`` sequences)."""
    return json.dumps(obj, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e")


def _check(page: Page) -> None:
    if not page.sections:
        raise UserError("nothing to show: the viewer page has no volumes")
    for s in page.sections:
        if s.control not in ("none", "grid", "slider"):
            raise ValueError(f"unknown section control {s.control!r}")
        for opt in s.options:
            if len(opt["vols"]) != len(s.slots):
                raise ValueError(f"section {s.title!r}: option {opt.get('label')!r} does not fill every slot")
            if any(not 0 <= v < len(page.volumes) for v in opt["vols"]):
                raise ValueError(f"section {s.title!r}: volume index out of range")


def render_page(page: Page) -> str:
    """The HTML text of ``page`` (NiiVue and every volume inline)."""
    _check(page)
    vols = []
    for v in page.volumes:
        window = v.window or robust_window([v.data])
        vols.append(
            {
                "name": v.name,
                "b64": base64.b64encode(encode_nifti(v.data, v.affine)).decode("ascii"),
                "cal": [float(window[0]), float(window[1])],
                "colormap": v.colormap,
                "shape": list(np.shape(v.data)),
            }
        )
    doc = {
        "title": page.title,
        "volumes": vols,
        "sections": [
            {"title": s.title, "note": s.note, "slots": s.slots, "options": s.options, "control": s.control}
            for s in page.sections
        ],
    }
    note = " ".join(x for x in (page.note, f"NiiVue {NIIVUE_VERSION}; {ENCODING_NOTE}.") if x)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(page.title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{html.escape(page.title)}</h1><p class='note'>{html.escape(note)}</p>"
        "<nav id='tabs'></nav></header><main id='main'></main>"
        "<pre id='status' data-state='loading'>loading</pre>"
        f"<script>{niivue_bundle()}</script>"
        f"<script type='application/json' id='sg3d-data'>{_json_for_script(doc)}</script>"
        f"<script>{_viewer_js()}</script></body></html>"
    )


def write_page(page: Page, path: str | os.PathLike) -> Path:
    """Atomically write the page to ``path``; returns the path."""
    path = Path(path)
    atomic_write_text(path, render_page(page))
    return path


_CSS = (
    "body{font-family:sans-serif;margin:0;background:#111;color:#ddd}"
    "header{padding:8px 14px}h1{font-size:18px;margin:4px 0}h2{font-size:15px;margin:6px 0}"
    ".note{font-size:12px;color:#999;margin:2px 0}"
    "nav button,.ctl button{background:#333;color:#ddd;border:1px solid #555;margin:2px;padding:3px 8px;cursor:pointer}"
    "nav button.on,.ctl button.on{background:#2a6bd1;color:#fff}"
    "main{padding:0 14px}.panels{display:flex;flex-wrap:wrap;gap:8px}"
    ".panel{flex:1 1 340px;max-width:560px;min-width:280px}"
    ".cv{position:relative;width:100%;aspect-ratio:1/1;background:#000}"
    ".cv canvas{position:absolute;left:0;top:0;width:100%;height:100%;display:block}"
    ".ptitle{font-size:13px;font-weight:bold;margin:2px 0}"
    ".readout{font-family:monospace;font-size:12px;color:#cfc;min-height:2.6em;white-space:pre-wrap}"
    ".ctl{margin:6px 0}.ctl table{border-collapse:collapse}.ctl td{padding:0}"
    ".ctl input[type=range]{width:min(600px,90vw)}"
    "#status{display:none}#status[data-state=error]{display:block;color:#f88;margin:10px 14px;white-space:pre-wrap}"
)
