"""Accounts: registration, credential checks, password changes, disabling."""

from __future__ import annotations

import uuid

from authsvc.core.audit import audit
from authsvc.core.clock import Clock
from authsvc.core.errors import Busy, FieldError, InvalidInput, UnknownUser, invalid_login
from authsvc.core.passwords import PasswordHasher
from authsvc.core.ratelimits import RateLimiter
from authsvc.core.validation import PasswordPolicy, email_errors, normalize_email
from authsvc.stores.base import DuplicateEmail, SessionStore, User, UserStore


class AccountService:
    def __init__(
        self,
        users: UserStore,
        sessions: SessionStore,
        hasher: PasswordHasher,
        clock: Clock,
        limiter: RateLimiter,
        *,
        policy: PasswordPolicy,
        email_confirmation: bool,
    ) -> None:
        self._users = users
        self._sessions = sessions
        self._hasher = hasher
        self._clock = clock
        self._limiter = limiter
        self._policy = policy
        self._email_confirmation = email_confirmation

    async def register(self, email: str, password: str, client_ip: str) -> User:
        """Create an account. Raises RateLimited past the registrations allowed from
        ``client_ip``, InvalidInput with every field error, or "already taken" when the
        email exists (also when a concurrent call won)."""
        with self._hasher.admitted():  # busy: the cheapest refusal first, counted nowhere
            await self._limiter.hit(
                "register-ip", client_ip, self._limiter.policy.registrations_per_ip
            )
            return await self.create_user(email, password)

    async def create_user(self, email: str, password: str) -> User:
        """Create an account with no rate limit (``register`` and the admin CLI). Raises
        Busy, InvalidInput with every field error, or "already taken"."""
        with self._hasher.admitted():  # busy: answered now, before any lookup
            return await self._create_user(email, password)

    async def _create_user(self, email: str, password: str) -> User:
        errors = email_errors(email) + self._policy.errors(password, email)
        if errors:
            raise InvalidInput(errors)
        email = normalize_email(email)
        # Cheap early answer for the common case; the unique index decides races.
        if await self._users.get_by_email(email) is not None:
            raise _email_taken()
        now = self._clock()
        user = User(
            id=str(uuid.uuid4()),
            email=email,
            password_hash=await self._hasher.hash(password),
            # The Node service defaulted this to false and nobody could ever log in.
            confirmed=not self._email_confirmation,
            disabled=False,
            created_at=now,
            updated_at=now,
        )
        try:
            await self._users.create(user)
        except DuplicateEmail:
            raise _email_taken() from None
        audit("registered", user_id=user.id)
        return user

    async def check_credentials(self, email: str, password: str, client_ip: str) -> User:
        """The user whose email and password these are, if they may log in.

        Raises Busy at once when the hashing backlog is full. Raises RateLimited, before
        any hashing, past the attempts allowed from ``client_ip`` or the failures
        allowed on the account (also for an email with no account, so limits tell
        nothing either). Raises the one "invalid login"
        InvalidInput for an unknown email, a wrong password, a disabled or an
        unconfirmed account, after the same hash work. A hash of fewer rounds than
        configured is replaced on success.
        """
        # Busy first: the cheapest refusal (no store is asked under a flood), and an
        # attempt refused for load is not counted against the client or the account.
        with self._hasher.admitted():
            return await self._check_credentials(email, password, client_ip)

    async def _check_credentials(self, email: str, password: str, client_ip: str) -> User:
        limits = self._limiter.policy
        email = normalize_email(email)
        await self._limiter.hit("login-ip", client_ip, limits.login_attempts_per_ip)
        await self._limiter.check("login-fail", email, limits.login_failures_per_account)
        await self._limiter.check("login-streak", email, limits.consecutive_failures)
        try:
            user = await self._verified_user(email, password)
        except Busy:
            raise  # the hash was given up (no core for it in time): not an attempt
        except InvalidInput:
            audit("login_failed")  # no email: an unknown one may be a user's password typo
            await self._limiter.count("login-fail", email, limits.login_failures_per_account)
            await self._limiter.count("login-streak", email, limits.consecutive_failures)
            raise
        await self._limiter.reset("login-fail", email)
        await self._limiter.reset("login-streak", email)
        return user

    async def _verified_user(self, email: str, password: str) -> User:
        user = await self._users.get_by_email(email)
        if user is None:
            await self._hasher.burn()
            raise invalid_login()
        # The password is checked first, always: answering "not confirmed" before it
        # (as the Node service did) told anyone which emails have accounts.
        if not await self._hasher.verify(password, user.password_hash):
            raise invalid_login()
        if user.disabled or (self._email_confirmation and not user.confirmed):
            raise invalid_login()
        if self._hasher.needs_rehash(user.password_hash):
            new_hash = await self._hasher.hash(password)
            await self._users.set_password_hash(user.id, new_hash, self._clock())
        return user

    async def change_password(
        self, user: User, current_password: str, new_password: str, keep_session: str
    ) -> None:
        """Replace the password and end every session but ``keep_session``.
        Raises RateLimited past the changes allowed, InvalidInput when the current
        password is wrong or the new one breaks a rule."""
        limit = self._limiter.policy.password_changes_per_account
        await self._limiter.hit("password-change", user.id, limit, path="currentPassword")
        if not await self._hasher.verify(current_password, user.password_hash):
            raise InvalidInput([FieldError("currentPassword", "invalid password")])
        errors = self._policy.errors(new_password, user.email, path="newPassword")
        if errors:
            raise InvalidInput(errors)
        new_hash = await self._hasher.hash(new_password)
        await self._users.set_password_hash(user.id, new_hash, self._clock())
        # After the new hash is stored (SessionStore.revoke_all): a login that read the
        # old hash is refused, however long its hash takes; the caller's session goes on.
        await self._sessions.revoke_all(user.id, keep=keep_session)
        audit("password_changed", user_id=user.id)

    async def find(self, email: str) -> User:
        """The account with that email. Raises UnknownUser."""
        user = await self._users.get_by_email(normalize_email(email))
        if user is None:
            raise UnknownUser(email)
        return user

    async def list_users(self, limit: int, offset: int = 0) -> list[User]:
        return await self._users.list(limit, offset)

    async def delete_user(self, email: str) -> User:
        """Delete an account and end its sessions, also those of logins in flight.
        Raises UnknownUser."""
        user = await self.find(email)
        # The row first, then the revocation: a login that reads the epoch after it
        # finds no user (SessionStore.revoke_all).
        await self._users.delete(user.id)
        await self._sessions.revoke_all(user.id)
        audit("user_deleted", user_id=user.id)
        return user

    async def set_disabled(self, email: str, disabled: bool) -> User:
        """Disable (ending every session at once, also those of logins in flight) or
        enable an account. Raises UnknownUser."""
        user = await self.find(email)
        await self._users.set_disabled(user.id, disabled, self._clock())
        if disabled:  # after the row changed (SessionStore.revoke_all)
            await self._sessions.revoke_all(user.id)
        audit("user_disabled" if disabled else "user_enabled", user_id=user.id)
        return user


def _email_taken() -> InvalidInput:
    return InvalidInput([FieldError("email", "already taken")])
