"""Model errors, importable without torch so the CLI and the app core can catch them cheaply."""


class ModelError(Exception):
    """Any problem finding, loading or running the model, explained for the user."""


class ModelNotFoundError(ModelError):
    """No checkpoint where one was expected; the message says what to download and where to put it."""


class PickleCheckpointError(ModelError):
    """The folder holds only pickle (.bin / .pt) weights; the message names `medapp model convert`."""


class DeviceUnavailableError(ModelError):
    """The requested device (for example CUDA) is not available on this machine."""


class QuantizationUnavailableError(ModelError):
    """The requested quantisation (for example 4-bit) cannot run here."""


class CheckpointFormatError(ModelError):
    """The checkpoint folder is not a Dragonfly checkpoint or its weights do not match the config."""


class ChecksumMismatchError(CheckpointFormatError):
    """A weight file's SHA-256 differs from the checkpoint's SHA256SUMS manifest (corrupt or edited copy)."""
