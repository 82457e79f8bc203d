"""Errors that end a command with exit status 2 and one clear line on stderr."""


class UsageError(Exception):
    """Bad arguments, a missing folder, an unreadable policy: the user must fix something."""


class SourceError(OSError):
    """A target could not be read (network, permissions, malformed repo). An OSError, so every reader that
    already survives I/O errors survives a remote fault the same way."""

    def __init__(self, message: str, rule: str = "source.unreadable"):
        super().__init__(message)
        self.rule = rule
