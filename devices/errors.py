"""Device errors: a stable `code` for machines and a message a technician can act on."""

from __future__ import annotations


class DeviceError(Exception):
    """A device cannot be used right now (missing, unplugged, refused to open)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DeviceConfigError(ValueError):
    """The `[devices]` configuration is wrong; the message names the key and the fix."""
