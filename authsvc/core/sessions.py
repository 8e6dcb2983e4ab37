"""Sessions: login, refresh and renewal, logout, and what an access token may do.

A login creates a session in the SessionStore; its refresh token names it (``sid``) and
the store keeps hashes of token jtis, never tokens. ``renew`` rotates the refresh token:
the presented one is spent, and presenting a spent one again revokes the whole session
(the family), except a retry with the immediate parent within the grace window.
Access tokens name their session too, and operations that take one check it is alive.

Revocation wins every race (DESIGN §6): disable, delete, a new password, logoutAll and
the admin's "end all" bump the user's revocation epoch in the session store after
changing the users database; a login reads the epoch before it reads the user and
creates its session only if the epoch has not moved since, and every use of a session
checks it is of the current epoch (SessionStore, in the same round trip).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta

from authsvc.core.accounts import AccountService
from authsvc.core.audit import audit
from authsvc.core.clock import Clock
from authsvc.core.errors import RotationRequired, Unauthorized, invalid_login
from authsvc.core.events import NO_EVENTS, EventSink, sessions_revoked
from authsvc.core.passwords import PasswordHasher
from authsvc.core.ratelimits import RateLimiter
from authsvc.core.tokens import Claims, TokenCodec
from authsvc.stores.base import (
    LimitReached,
    RefreshUse,
    Session,
    SessionStore,
    UseLimit,
    User,
    UserStore,
)

#: How long `me` and friends may use a user row read before (see _recent_user).
USER_CACHE_S = 2.0
USER_CACHE_SIZE = 10_000

#: Client details kept on a session are for people reading them, so they are capped.
MAX_USER_AGENT_CHARS = 256


@dataclass(frozen=True, slots=True)
class ClientInfo:
    ip: str = ""  # the client's own address: kept on its sessions, shown to people
    user_agent: str = ""
    #: What per-address limits count (an IPv6 client's network); empty: ``ip``.
    limit_subject: str = ""

    @property
    def limited_as(self) -> str:
        return self.limit_subject or self.ip


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    rotation_required: bool
    reuse_grace_s: float
    idle_timeout_s: float


@dataclass(frozen=True, slots=True)
class Caller:
    """Who an access token speaks for, its session checked alive."""

    user: User
    session_id: str
    #: When the access token expires (seconds since the epoch): what may cache the
    #: answer must not keep it longer.
    expires_at: int = 0


@dataclass(frozen=True, slots=True)
class SessionView:
    session: Session
    current: bool


def jti_hash(jti: str) -> str:
    """What the store keeps of a refresh token: a leaked store yields no usable token."""
    return hashlib.sha256(jti.encode()).hexdigest()


def child_jti(parent_jti: str) -> str:
    """The jti that renewing ``parent_jti`` yields. Derived, not random, so that a retry
    with the parent inside the grace window (a lost response, 50 parallel renewals) gets
    a token for the same current jti: one live lineage. Tokens are signed, so knowing
    the jti gives no one a token."""
    return hashlib.sha256(b"authsvc-renew:" + parent_jti.encode()).hexdigest()[:32]


class SessionService:
    def __init__(
        self,
        accounts: AccountService,
        users: UserStore,
        sessions: SessionStore,
        tokens: TokenCodec,
        clock: Clock,
        limiter: RateLimiter,
        policy: SessionPolicy,
        *,
        hasher: PasswordHasher,
        events: EventSink = NO_EVENTS,
    ) -> None:
        """``events``: where ``session.revoked`` goes (webhooks); only asked when an
        endpoint wants it, and never on refresh or renewal unless a reuse ends the
        session."""
        self._hasher = hasher
        self._events = events
        self._limiter = limiter
        self._user_cache: OrderedDict[str, tuple[float, User | None]] = OrderedDict()
        self._user_reads: dict[str, asyncio.Future[User | None]] = {}
        self._accounts = accounts
        self._users = users
        self._sessions = sessions
        self._tokens = tokens
        self._clock = clock
        self._policy = policy

    async def login(self, email: str, password: str, client: ClientInfo) -> TokenPair:
        """Check the credentials and start a session. Raises InvalidInput ("invalid
        login") for any refusal, also when the account was revoked (disabled, deleted,
        given a new password, logged out everywhere) while the password was checked."""
        verified = await self._accounts.check_credentials(email, password, client.limited_as)
        user = verified.user
        now = self._clock()
        session_id = secrets.token_hex(16)
        refresh_jti = secrets.token_hex(16)
        session = Session(
            id=session_id,
            user_id=user.id,
            refresh_jti_hash=jti_hash(refresh_jti),
            created_at=now,
            last_used_at=now,
            expires_at=now + timedelta(seconds=self._tokens.refresh.lifetime_s),
            user_agent=client.user_agent[:MAX_USER_AGENT_CHARS],
            ip=client.ip,
            epoch=verified.epoch,
        )
        if not await self._sessions.create(session):  # a revocation came in between
            audit("login_revoked_in_flight", user_id=user.id)
            raise invalid_login()
        audit("login_succeeded", user_id=user.id, session_id=session_id)
        return self._pair(user.id, session_id, refresh_jti)

    async def refresh(self, refresh_token: str) -> str:
        """A new access token; the refresh token stays as it is (the Node service's
        flow). Needs the session store only, so it keeps working while the users
        database is down. Raises Unauthorized, or RotationRequired when the server
        only rotates."""
        if self._policy.rotation_required:
            raise RotationRequired()
        claims = self._tokens.verify(self._tokens.refresh, refresh_token)
        await self._use(claims, rotate_to=None)
        return self._tokens.issue(self._tokens.access, claims.sub, claims.sid)

    async def renew(self, refresh_token: str) -> TokenPair:
        """A new access and refresh token; the presented refresh token is spent.
        Raises Unauthorized, also for a spent token, whose session is then revoked."""
        claims = self._tokens.verify(self._tokens.refresh, refresh_token, keep=False)
        child = child_jti(claims.jti)
        await self._use(claims, rotate_to=jti_hash(child))
        return self._pair(claims.sub, claims.sid, child)

    async def logout(self, refresh_token: str) -> None:
        """End the session of ``refresh_token``. Of concurrent logouts of one session
        exactly one succeeds; the others, like any invalid token, raise Unauthorized.
        A spent refresh token (renewed away) is a reuse, as for renew: the session
        ends, the reuse is reported, and the caller gets Unauthorized."""
        claims = self._tokens.verify(self._tokens.refresh, refresh_token, keep=False)
        await self._use(claims, rotate_to=None, ending=True)  # a reuse deleted it already
        if not await self._sessions.delete(claims.sub, claims.sid):
            raise Unauthorized()
        audit("logged_out", user_id=claims.sub, session_id=claims.sid)
        await sessions_revoked(self._events, claims.sub, "logout", session_id=claims.sid)

    async def authenticate(self, access_token: str) -> Caller:
        """The caller of a valid access token whose session is alive and whose account
        is neither gone nor disabled. Raises Unauthorized."""
        claims, user = await self._authenticated_claims(access_token)
        return Caller(user=user, session_id=claims.sid, expires_at=claims.exp)

    async def user_for_access_token(self, access_token: str) -> User:
        return (await self.authenticate(access_token)).user

    async def list_sessions(self, access_token: str) -> list[SessionView]:
        caller = await self.authenticate(access_token)
        sessions = await self._sessions.list_for_user(caller.user.id)
        return [SessionView(s, current=s.id == caller.session_id) for s in sessions]

    async def revoke_session(self, access_token: str, session_id: str) -> bool:
        """End one of the caller's own sessions; False if the caller has no such one."""
        caller = await self.authenticate(access_token)
        ended = await self._sessions.delete(caller.user.id, session_id)
        if ended:
            await sessions_revoked(self._events, caller.user.id, "revoke_session",
                                   session_id=session_id)  # fmt: skip
        return ended

    async def logout_all(self, access_token: str) -> int:
        """End every session of the caller, the current one included, and those that
        logins in flight are about to make."""
        caller = await self.authenticate(access_token)
        ended = await self._sessions.revoke_all(caller.user.id)
        audit("logged_out_everywhere", user_id=caller.user.id, sessions=str(ended))
        await sessions_revoked(self._events, caller.user.id, "logout_all", sessions=ended)
        return ended

    async def sessions_of(self, email: str) -> tuple[User, list[Session]]:
        """The account of ``email`` and its live sessions (admin). Raises UnknownUser."""
        user = await self._accounts.find(email)
        return user, await self._sessions.list_for_user(user.id)

    async def end_sessions_of(self, email: str, session_id: str | None = None) -> int:
        """End one session of the account, or all (admin). Raises UnknownUser."""
        user = await self._accounts.find(email)
        if session_id is not None:
            ended = int(await self._sessions.delete(user.id, session_id))
        else:
            ended = await self._sessions.revoke_all(user.id)
        audit("sessions_revoked", user_id=user.id, sessions=str(ended))
        if ended:
            await sessions_revoked(self._events, user.id, "admin", sessions=ended)
        return ended

    async def change_password(
        self, access_token: str, current_password: str, new_password: str
    ) -> None:
        """Change the caller's password; every other session of theirs ends."""
        caller = await self.authenticate(access_token)
        await self._accounts.change_password(
            caller.user, current_password, new_password, keep_session=caller.session_id
        )

    async def introspect(self, token: str) -> Claims | None:
        """The claims of ``token`` if it is active now (RFC 7662): a valid access token
        whose session and account are alive, or a refresh token that is its session's
        current one. Changes nothing; None for anything else."""
        try:
            return (await self._authenticated_claims(token))[0]
        except Unauthorized:
            pass
        try:
            claims = self._tokens.verify(self._tokens.refresh, token)
        except Unauthorized:
            return None
        session = await self._sessions.get(claims.sub, claims.sid)
        if session is None or session.refresh_jti_hash != jti_hash(claims.jti):
            return None
        return claims

    async def _authenticated_claims(self, access_token: str) -> tuple[Claims, User]:
        claims = self._tokens.verify(self._tokens.access, access_token)
        if not await self._sessions.exists(claims.sub, claims.sid):
            raise Unauthorized()  # logged out, revoked or expired: the online check
        user = await self._recent_user(claims.sub)
        if user is None or user.disabled:
            raise Unauthorized()
        return claims, user

    async def _recent_user(self, user_id: str) -> User | None:
        """The user, read at most USER_CACHE_S ago. Safe to keep that briefly: disabling,
        deleting and password changes end sessions, which the session check above sees
        at once; only the profile fields can lag.

        Concurrent requests for one user share one read, and each entry lives a random
        part of USER_CACHE_S beyond its first half: entries made together (a burst of
        clients) do not all expire together and send the database a burst of reads."""
        now = time.monotonic()
        cached = self._user_cache.get(user_id)
        if cached is not None and now < cached[0]:
            return cached[1]
        read = self._user_reads.get(user_id)
        if read is None:
            read = asyncio.ensure_future(self._users.get(user_id))
            self._user_reads[user_id] = read
            read.add_done_callback(lambda done: self._read_done(user_id, done))
        user = await asyncio.shield(read)  # a waiter that gives up leaves the read to others
        expires = time.monotonic() + USER_CACHE_S * random.uniform(0.5, 1.0)  # noqa: S311
        self._user_cache[user_id] = (expires, user)
        if len(self._user_cache) > USER_CACHE_SIZE:
            self._user_cache.popitem(last=False)
        return user

    def _read_done(self, user_id: str, read: asyncio.Future[User | None]) -> None:
        self._user_reads.pop(user_id, None)
        if not read.cancelled():
            read.exception()  # seen, even when every waiter gave up before it ended

    async def _use(self, claims: Claims, rotate_to: str | None, ending: bool = False) -> None:
        """Judge the refresh token of ``claims`` against its session; Unauthorized
        unless accepted, and a spent one is reported. ``ending`` (logout): not counted
        against the refresh limit, and an idle session may still be ended."""
        # The session store counts the use itself, in the same round trip as the rest.
        limit = self._limiter.policy.refreshes_per_session
        try:
            outcome = await self._sessions.use_refresh(
                claims.sub,
                claims.sid,
                jti_hash(claims.jti),
                rotate_to=rotate_to,
                now=self._clock(),
                grace_s=self._policy.reuse_grace_s,
                idle_timeout_s=0 if ending else self._policy.idle_timeout_s,
                limit=UseLimit(limit.max, limit.window_s) if limit.on and not ending else None,
            )
        except LimitReached as reached:
            raise self._limiter.refused("refresh", reached.resets_at, path="token") from None
        if outcome is RefreshUse.REUSED:  # a spent token: copied; the session is revoked
            audit(
                "refresh_reuse_detected", logging.WARNING, user_id=claims.sub, session_id=claims.sid
            )
            # Rare (a stolen token, or a client bug): the one case where a refresh or
            # renewal writes to the database, and only when an endpoint wants it.
            await sessions_revoked(self._events, claims.sub, "reuse_detected",
                                   session_id=claims.sid)  # fmt: skip
        if outcome in (RefreshUse.REUSED, RefreshUse.MISSING):
            raise Unauthorized()

    def _pair(self, user_id: str, session_id: str, refresh_jti: str) -> TokenPair:
        return TokenPair(
            access_token=self._tokens.issue(self._tokens.access, user_id, session_id),
            refresh_token=self._tokens.issue(
                self._tokens.refresh, user_id, session_id, refresh_jti
            ),
            expires_in=self._tokens.access.lifetime_s,
        )
