"""The exception tree of dialtone, drawn once.

::

    DialtoneError                 base of everything dialtone raises on purpose
    ├── ConfigError               bad setting or environment: one clear line, exit 2
    ├── StartupError              the server cannot start (port in use, data dir, database)
    ├── ApiError                  becomes the Twilio-shaped REST error (code, HTTP status)
    └── StorageError              a database failure mapped at the storage boundary

SIP-level errors live in :mod:`dialtone.sip.errors` (``SipError(status)`` *is* the SIP
response); RCML and webhook errors come with the call issues.  Foreign exceptions (OSError,
SQLAlchemy, httpx) are mapped into this tree at one boundary each and never leak to users.
"""

from __future__ import annotations


class DialtoneError(Exception):
    """Base class of the errors dialtone raises on purpose."""


class ConfigError(DialtoneError):
    """A setting, flag or environment variable has an unusable value."""


class StartupError(DialtoneError):
    """The server cannot start; the message names the cause in one line."""


class StorageError(DialtoneError):
    """The database failed or holds data dialtone cannot use."""


class ApiError(DialtoneError):
    """A REST API error with Twilio's shape: numeric ``code``, HTTP ``status`` and a message."""

    def __init__(self, code: int, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
