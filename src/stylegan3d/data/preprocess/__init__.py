"""Raw T1 scans into the model's frame, as the reference's training data were prepared.

One module per step, each usable alone:

- :mod:`.bias`: reorientation to RAS and N4 bias-field correction (SimpleITK);
- :mod:`.brain`: brain extraction with deepbet's network (CPU), keeping the mask;
- :mod:`.register`: 12-dof affine registration to nilearn's MNI152 template (SimpleITK), the
  transform's composition into one resampling onto a grid, and its inverse back to native space;
- :mod:`.qc`: a quality-control picture per scan and a contact sheet of many;
- :mod:`.pipeline`: all of them in order, plus the input checks, for ``prepare`` and ``project``.

Every step raises :class:`PreprocessError` (a :class:`~stylegan3d.errors.DataError`) naming itself.
"""

from __future__ import annotations

from stylegan3d.errors import DataError

STEPS = ("load", "check", "n4", "brain", "register", "resample")
"""Pipeline steps in order; a :class:`PreprocessError` names one of them."""

SKIPPABLE = ("n4", "brain", "register")
"""Steps a user can skip for scans that are already bias-corrected, skull-stripped or MNI-registered."""


class PreprocessError(DataError):
    """A scan that failed one preprocessing step; ``step`` is one of :data:`STEPS`."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


__all__ = ["SKIPPABLE", "STEPS", "PreprocessError"]
