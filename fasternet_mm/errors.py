"""Errors caused by what the user gave: a config, a path, a checkpoint, a
model that cannot be exported. Their message is the whole story, so the
tools print it as one line (:func:`fasternet_mm.cli.exit_on_user_error`)
instead of a traceback; every other error keeps its traceback."""


class UserError(RuntimeError):
    """A problem with the user's input, explained by its message alone."""


class PreflightError(UserError):
    """A problem found in a config or its inputs before any heavy work."""


class MissingFileError(PreflightError, FileNotFoundError):
    """A file named on the command line or in a config (a config, an
    image, a checkpoint) that does not exist, found before any work."""


class CheckpointError(UserError):
    """A checkpoint that cannot be read, or does not fit the model."""


class ExportError(UserError):
    """A model, or a part of one, that cannot be exported to ONNX."""
