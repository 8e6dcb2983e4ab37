"""Sessions: login, refresh, logout, and the user behind an access token.

A login creates a session in the SessionStore; the refresh token names it (``sid``) and
the store keeps a hash of the token's ``jti``, never the token. Deleting the session
kills every refresh token of it for good.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta

from authsvc.core.accounts import AccountService
from authsvc.core.clock import Clock
from authsvc.core.errors import Unauthorized
from authsvc.core.tokens import TokenCodec
from authsvc.stores.base import Session, SessionStore, User, UserStore

#: Client details kept on a session are for people reading them, so they are capped.
MAX_USER_AGENT_CHARS = 256


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip: str = ""
    user_agent: str = ""


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str


def jti_hash(jti: str) -> str:
    """What the store keeps of a refresh token: a leaked store yields no usable token."""
    return hashlib.sha256(jti.encode()).hexdigest()


class SessionService:
    def __init__(
        self,
        accounts: AccountService,
        users: UserStore,
        sessions: SessionStore,
        tokens: TokenCodec,
        clock: Clock,
    ) -> None:
        self._accounts = accounts
        self._users = users
        self._sessions = sessions
        self._tokens = tokens
        self._clock = clock

    async def login(self, email: str, password: str, client: ClientInfo) -> TokenPair:
        """Check the credentials and start a session. Raises InvalidInput ("invalid
        login") for any refusal."""
        user = await self._accounts.check_credentials(email, password)
        now = self._clock()
        session_id = uuid.uuid4().hex
        refresh_jti = uuid.uuid4().hex
        await self._sessions.create(
            Session(
                id=session_id,
                user_id=user.id,
                refresh_jti_hash=jti_hash(refresh_jti),
                created_at=now,
                last_used_at=now,
                expires_at=now + timedelta(seconds=self._tokens.refresh.lifetime_s),
                user_agent=client.user_agent[:MAX_USER_AGENT_CHARS],
                ip=client.ip,
            )
        )
        return TokenPair(
            access_token=self._tokens.issue(self._tokens.access, user.id, session_id),
            refresh_token=self._tokens.issue(
                self._tokens.refresh, user.id, session_id, refresh_jti
            ),
        )

    async def refresh(self, refresh_token: str) -> str:
        """A new access token for a live session. Needs the session store only, so it
        keeps working while the users database is down. Raises Unauthorized."""
        claims = self._tokens.verify(self._tokens.refresh, refresh_token)
        alive = await self._sessions.touch(
            claims.sub, claims.sid, jti_hash(claims.jti), self._clock()
        )
        if not alive:
            raise Unauthorized()
        return self._tokens.issue(self._tokens.access, claims.sub, claims.sid)

    async def logout(self, refresh_token: str) -> None:
        """End the session of ``refresh_token``. Of concurrent logouts of one session
        exactly one succeeds; the others, like any invalid token, raise Unauthorized."""
        claims = self._tokens.verify(self._tokens.refresh, refresh_token)
        if not await self._sessions.delete(claims.sub, claims.sid):
            raise Unauthorized()

    async def user_for_access_token(self, access_token: str) -> User:
        """The user an access token was issued to. Raises Unauthorized if the token is
        invalid or the account is gone or disabled."""
        claims = self._tokens.verify(self._tokens.access, access_token)
        user = await self._users.get(claims.sub)
        if user is None or user.disabled:
            raise Unauthorized()
        return user
