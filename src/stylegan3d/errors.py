"""The project's own exceptions. The CLI prints them as one line and exits non-zero."""


class UserError(Exception):
    """A mistake in the user's input (missing file, bad option, incompatible checkpoint)."""


class DataError(UserError):
    """A file that cannot be used as a volume (per-file, collected into reports)."""


class CheckpointError(UserError):
    """A checkpoint that is missing, corrupt, unsafe or incompatible."""
