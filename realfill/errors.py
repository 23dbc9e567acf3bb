"""User-facing errors: reported as one line and a non-zero exit, never a traceback."""


class RealFillError(Exception):
    """A problem with the user's input (a scene, a config, a model path) to report in one line."""


class SceneError(RealFillError):
    """A scene folder or one of its files is missing, unreadable or inconsistent."""


class ModelLoadError(RealFillError):
    """A base model could not be loaded from its hub id or local folder."""


class ConfigError(RealFillError, ValueError):
    """A setting out of range, or settings that cannot work together (also a ValueError)."""


class OutputError(RealFillError):
    """An output path that cannot be written without destroying something else."""
