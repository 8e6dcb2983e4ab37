"""What a resolver knows of its request: the services and the caller."""

from __future__ import annotations

from dataclasses import dataclass, field

from authsvc.core.errors import Unauthorized
from authsvc.core.sessions import ClientInfo
from authsvc.services import Services


@dataclass(slots=True)
class ResponseHints:
    """What resolvers tell the HTTP layer beyond the GraphQL body."""

    retry_after_s: int | None = None  # busy or rate limited: the Retry-After header

    def retry_after(self, seconds: int | None) -> None:
        if seconds is not None:
            self.retry_after_s = max(seconds, self.retry_after_s or 0)


@dataclass(frozen=True, slots=True)
class RequestContext:
    services: Services
    authorization: str | None
    client: ClientInfo
    request_id: str
    hints: ResponseHints = field(default_factory=ResponseHints)

    def bearer_token(self) -> str:
        """The token of an ``authorization: Bearer <token>`` header (scheme matched
        case-insensitively). Raises Unauthorized for a missing, empty or odd header."""
        return bearer_token(self.authorization)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value (scheme matched
    case-insensitively). Raises Unauthorized for a missing, empty or odd value."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise Unauthorized()
    return token
