"""The one error type of the patient journey: a stable code, a message a nurse can act on."""

from __future__ import annotations


class JourneyError(Exception):
    """A refused journey request; `status` is the HTTP status the API answers with."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
