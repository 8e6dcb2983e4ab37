"""Accounts: registration, credential checks, password changes, disabling."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from authsvc.core.audit import audit
from authsvc.core.clock import Clock
from authsvc.core.errors import Busy, FieldError, InvalidInput, UnknownUser, invalid_login
from authsvc.core.events import NO_EVENTS, Changes, Data, sessions_revoked
from authsvc.core.passwords import PasswordHasher
from authsvc.core.ratelimits import Limit, RateLimited, RateLimiter
from authsvc.core.validation import PasswordPolicy, email_errors, normalize_email
from authsvc.stores.base import DuplicateEmail, SessionStore, StoreUnavailable, User, UserStore

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Verified:
    """A login's credentials, checked: the user, and the user's revocation epoch read
    before the user was (the login's session must be created under it)."""

    user: User
    epoch: int


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
        create_unconfirmed: Callable[[User], Awaitable[None]] | None = None,
        forget_links: Callable[[str], Awaitable[None]] | None = None,
        changes: Changes | None = None,
    ) -> None:
        """``create_unconfirmed``: with ``email_confirmation``, how a new account is
        stored together with its confirmation token and mail (AccountLifecycle), in
        one transaction. ``changes``: how a users-table change is recorded with the
        event (webhooks) that reports it; None: no events."""
        self._users = users
        self._sessions = sessions
        self._hasher = hasher
        self._clock = clock
        self._limiter = limiter
        self._policy = policy
        self._email_confirmation = email_confirmation
        self._create_unconfirmed = create_unconfirmed if email_confirmation else None
        #: Ends every mailed link of an account (AccountLifecycle.forget_links).
        self._forget_links = forget_links
        self._changes = changes
        self._events = changes.events if changes is not None else NO_EVENTS

    async def _change(
        self, event_type: str, change: Callable[[UserStore], Awaitable[T]], **data: Data
    ) -> T:
        """A users-table change, with the event that reports it in its transaction."""
        if self._changes is None:
            return await change(self._users)
        return await self._changes.apply(event_type, change, **data)

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
            if self._create_unconfirmed is None:
                await self._change("user.registered", lambda users: users.create(user),
                                   user_id=user.id)  # fmt: skip
            else:
                await self._create_unconfirmed(user)
        except DuplicateEmail:
            raise _email_taken() from None
        audit("registered", user_id=user.id)
        return user

    async def check_credentials(self, email: str, password: str, client_ip: str) -> Verified:
        """The user whose email and password these are, if they may log in, and the
        revocation epoch to create the login's session under (SessionStore.create).

        Raises Busy at once when the hashing backlog is full. Raises RateLimited, before
        any hashing, past the attempts allowed from ``client_ip``, the failures allowed
        on the account from ``client_ip``, or the failures in a row allowed on the
        account from every address (also for an email with no account, so limits tell
        nothing either). Raises the one "invalid login"
        InvalidInput for an unknown email, a wrong password, a disabled or an
        unconfirmed account, after the same hash work. A hash of other rounds than
        configured is replaced on success.
        """
        # Busy first: the cheapest refusal (no store is asked under a flood), and an
        # attempt refused for load is not counted against the client or the account.
        with self._hasher.admitted():
            return await self._check_credentials(email, password, client_ip)

    async def _check_credentials(self, email: str, password: str, client_ip: str) -> Verified:
        limits = self._limiter.policy
        email = normalize_email(email)
        # Each attempt is counted as a failure before its password is hashed (and given
        # back or cleared after): counted only after the hash, every attempt in flight
        # passed the check, and 20 parallel guesses against 10/900 were all evaluated.
        await self._limiter.hit("login-ip", client_ip, limits.login_attempts_per_ip)
        # Short window per account *and address*: one attacker's address cannot lock
        # the owner out. The long window bounds the account from all addresses.
        (fail, fail_subject), (streak, streak_subject) = login_failure_counters(email, client_ip)
        reserved = [
            (fail, fail_subject, limits.login_failures_per_account),
            (streak, streak_subject, limits.consecutive_failures),
        ]
        held: list[tuple[str, str, Limit]] = []
        in_a_row = 0  # this attempt's place in the account's failures in a row
        try:
            for scope, subject, limit in reserved:
                counted = await self._limiter.hit(scope, subject, limit)
                held.append((scope, subject, limit))
                if scope == streak:
                    in_a_row = counted
            verified = await self._verified_user(email, password)
        except (RateLimited, Busy):  # refused, or the hash given up: no password tried
            await self._give_back(held)
            raise
        except NotConfirmed:  # the right password: no failure, but no session either
            for scope, subject, _ in reserved:
                await self._limiter.reset(scope, subject)
            raise
        except InvalidInput:  # a failure: it stays counted
            audit("login_failed")  # no email: an unknown one may be a user's password typo
            if in_a_row and in_a_row == limits.consecutive_failures.max:
                await self._locked(email)  # the failure that locks the account
            raise
        except BaseException:  # a store down: no attempt either
            await self._give_back(held)
            raise
        for scope, subject, _ in reserved:
            await self._limiter.reset(scope, subject)
        return verified

    async def _locked(self, email: str) -> None:
        """``login.locked`` for the account of ``email`` (none for an unknown email):
        once per lock, by the one attempt that counted the last failure allowed (the
        counter is atomic, so parallel attempts cannot both be it)."""
        if not self._events.wants("login.locked"):
            return
        try:
            user = await self._users.get_by_email(email)
        except StoreUnavailable:
            return  # the refusal stands; the event is lost (publish would count it)
        if user is not None:
            await self._events.publish(
                "login.locked", user_id=user.id,
                locked_for_s=int(self._limiter.policy.consecutive_failures.window_s),
            )  # fmt: skip

    async def _give_back(self, held: list[tuple[str, str, Limit]]) -> None:
        # Kept counted if the store is down: an error should not hide the first one,
        # and an attempt too many only errs on the safe side.
        with contextlib.suppress(StoreUnavailable):
            for scope, subject, limit in held:
                await self._limiter.give_back(scope, subject, limit)

    async def _verified_user(self, email: str, password: str) -> Verified:
        # Revocation wins (DESIGN §6): the epoch is read before the user row that is
        # judged, so a disable, delete or new password that lands after that read has
        # bumped the epoch after it too, and the login's session is refused at create.
        # The first read only finds the id; an unknown email reads the epoch of no one
        # (a random id: no key is hot under a flood) and the row again, so every login
        # takes the same round trips and timing tells nothing.
        known = await self._users.get_by_email(email)
        epoch = await self._sessions.epoch(known.id if known else str(uuid.uuid4()))
        user = await self._users.get_by_email(email)
        if user is None or known is None or user.id != known.id:  # gone, or made anew
            await self._hasher.burn()
            raise invalid_login()
        # The password is checked first, always: answering "not confirmed" before it
        # (as the Node service did) told anyone which emails have accounts.
        matched = await self._hasher.verify(password, user.password_hash)
        if not matched or user.disabled:
            # Every refusal costs one hash at BCRYPT_ROUNDS: a cheaper, older hash
            # (imported, or made before the rounds were raised) would answer sooner.
            await self._hasher.burn(checked=user.password_hash)
            raise invalid_login()
        if self._email_confirmation and not user.confirmed:
            # As the Node service answered, but only to whoever has the password.
            raise NotConfirmed()
        # A success costs more on a cheaper hash (the rehash): only the owner sees it.
        if self._hasher.needs_rehash(user.password_hash):
            new_hash = await self._hasher.hash(password)
            # Only over the hash just checked: a password changed meanwhile stays.
            await self._users.set_password_hash(
                user.id, new_hash, self._clock(), replacing=user.password_hash
            )
        return Verified(user, epoch)

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
        now = self._clock()
        await self._change(
            "password.changed",
            lambda users: users.set_password_hash(user.id, new_hash, now),
            user_id=user.id,
        )
        # After the new hash is stored (SessionStore.revoke_all): a login that read the
        # old hash is refused, however long its hash takes; the caller's session goes on.
        ended = await self._sessions.revoke_all(user.id, keep=keep_session)
        audit("password_changed", user_id=user.id)
        await sessions_revoked(self._events, user.id, "password_changed", sessions=ended)

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
        await self._change("user.deleted", lambda users: users.delete(user.id),
                           user_id=user.id)  # fmt: skip
        await self._sessions.revoke_all(user.id)
        if self._forget_links is not None:
            await self._forget_links(user.id)
        audit("user_deleted", user_id=user.id)
        return user

    async def set_disabled(self, email: str, disabled: bool) -> User:
        """Disable (ending every session at once, also those of logins in flight) or
        enable an account. Raises UnknownUser."""
        user = await self.find(email)
        now = self._clock()
        if not disabled:
            await self._users.set_disabled(user.id, False, now)
            audit("user_enabled", user_id=user.id)
            return user
        if user.disabled:  # already: the sessions are ended again, nothing is reported
            await self._users.set_disabled(user.id, True, now)
        else:
            await self._change(
                "user.disabled", lambda users: users.set_disabled(user.id, True, now),
                user_id=user.id,
            )  # fmt: skip
        # After the row changed (SessionStore.revoke_all).
        ended = await self._sessions.revoke_all(user.id)
        if self._forget_links is not None:
            await self._forget_links(user.id)
        audit("user_disabled", user_id=user.id)
        await sessions_revoked(self._events, user.id, "disabled", sessions=ended)
        return user

    async def confirm_email(self, email: str) -> User:
        """Mark the account's email confirmed, as its confirmation link would: for an
        operator (`authsvc users confirm`) when a user's mail never came. Raises
        UnknownUser."""
        user = await self.find(email)
        if not user.confirmed:
            now = self._clock()
            await self._change("user.confirmed", lambda users: users.set_confirmed(user.id, now),
                               user_id=user.id)  # fmt: skip
        audit("email_confirmed", user_id=user.id)
        return user


def login_failure_counters(email: str, client_ip: str) -> tuple[tuple[str, str], ...]:
    """(scope, subject) of the counters of failed logins to the account of ``email``:
    from ``client_ip``, and in a row from every address. A password reset clears them."""
    return (("login-fail", account_at(email, client_ip)), ("login-streak", email))


def account_at(email: str, client_ip: str) -> str:
    """The subject of an account's failures from one address. The address holds no
    NUL and comes last, so no other email and address make the same subject."""
    return f"{email}\0{client_ip}"


class NotConfirmed(InvalidInput):
    """The right password for an account whose email is not confirmed yet."""

    def __init__(self) -> None:
        super().__init__([FieldError("email", "not confirmed")])


def _email_taken() -> InvalidInput:
    return InvalidInput([FieldError("email", "already taken")])
