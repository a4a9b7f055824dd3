"""Errors that mean "the user asked for something that cannot work": scripts print them as one line."""


class UserError(Exception):
    """A mistake in flags, config, paths or files; reported without a traceback, exit code 2."""


class ConfigError(UserError):
    """The config file or a --set override is invalid."""


class DatasetError(UserError):
    """Dataset files are missing, unreadable or the requested sizes cannot work."""


class CheckpointError(UserError):
    """A checkpoint or run-state file is missing, corrupted or does not match the request."""


class TrainingDiverged(UserError):
    """The loss stopped being finite; training stops instead of writing a useless model."""
