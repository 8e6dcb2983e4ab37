"""Domain errors, each with a stable ``code``.

graphql-core copies an exception's ``extensions`` onto the GraphQL error it wraps, so a
resolver that lets one of these escape answers ``extensions.code`` with no try/except.

    DomainError
    ├── Unauthorized       no valid token for the operation       UNAUTHENTICATED
    ├── RotationRequired   `refresh` is off: the server rotates   ROTATION_REQUIRED
    ├── UnknownUser        no account with that email (admin)     NOT_FOUND
    └── InvalidInput       field errors (register, login, …)      BAD_USER_INPUT
        ├── Busy           the hashing backlog is full: 503       BUSY
        └── RateLimited    (core.ratelimits) over a limit: 429    RATE_LIMITED
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "BAD_REQUEST"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def extensions(self) -> dict[str, object]:
        return {"code": self.code}


class Unauthorized(DomainError):
    """Missing, malformed, expired or revoked token. The message never says which."""

    code = "UNAUTHENTICATED"

    def __init__(self) -> None:
        super().__init__("Unauthorized")


class RotationRequired(DomainError):
    """REFRESH_ROTATION=required: the non-rotating ``refresh`` is refused."""

    code = "ROTATION_REQUIRED"

    def __init__(self) -> None:
        super().__init__("refresh is disabled on this server: use renew")


class UnknownUser(DomainError):
    code = "NOT_FOUND"

    def __init__(self, email: str) -> None:
        super().__init__(f"no user with email {email!r}")


@dataclass(frozen=True, slots=True)
class FieldError:
    """One field-level error, the ``YupError`` of the Node service's API."""

    path: str
    message: str


class InvalidInput(DomainError):
    """The input was refused; ``status`` is what MutationResponse reports (401, as the
    Node service answered every failure)."""

    code = "BAD_USER_INPUT"
    #: When to try again, for refusals that pass (busy, rate limited): the HTTP
    #: response carries it as Retry-After.
    retry_after_s: int | None = None

    def __init__(self, errors: list[FieldError], status: int = 401) -> None:
        super().__init__("; ".join(f"{e.path}: {e.message}" for e in errors))
        self.errors = errors
        self.status = status

    @property
    def extensions(self) -> dict[str, object]:
        if self.retry_after_s is None:
            return {"code": self.code}
        return {"code": self.code, "retryAfter": self.retry_after_s}


def invalid_login() -> InvalidInput:
    """The one answer for unknown email, wrong password, disabled or unconfirmed account,
    so that login tells nothing about which accounts exist."""
    return InvalidInput([FieldError("email", "invalid login")])


class Busy(InvalidInput):
    """The passwords waiting to be hashed would take longer than the wait bound: answered
    at once, status 503, with the seconds until the backlog has room again."""

    code = "BUSY"

    def __init__(self, retry_after_s: int = 1) -> None:
        super().__init__([FieldError("email", "the server is busy, retry later")], status=503)
        self.message = "the server is busy, retry later"
        self.retry_after_s = retry_after_s
