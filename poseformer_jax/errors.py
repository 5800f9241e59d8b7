"""User-facing errors. Entry points print these as one line (no traceback unless --verbose)."""


class PoseFormerError(Exception):
  """Base class for errors caused by the user's input, files or configuration."""


class DataError(PoseFormerError, ValueError):
  """A data file is missing, unreadable, or has the wrong keys, shapes, dtypes or values."""


class ConfigError(PoseFormerError, ValueError):
  """A configuration value is invalid (unknown variant, inconsistent sizes, ...)."""
