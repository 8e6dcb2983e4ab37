"""The account flows by email: confirmation, password reset, email change.

Each flow is a request, answered without telling anything, and a single-use token sent
by mail that authorizes one change. The rules that keep them safe:

- A token is 256 random bits, stored only as its SHA-256, with its purpose, its
  account and the address it was sent to; it is good until it expires, it is spent
  (its row deleted) inside the transaction of the change it makes, and it is good only
  while the account still has the address it went to. Spent, expired, unknown and
  wrong-purpose tokens get the same error and change nothing.
- The requests that anyone can make (confirmation mail, reset mail) answer the same,
  in shape and in time, whether the address has an account or not: their limits are
  counted before any lookup, the resend cooldown is silent, and the answer waits for a
  floor from the request's start (EMAIL_REQUEST_ANSWER_S) that covers the work done
  for a real account. No mail goes to an address without an account.
- A mail is recorded in the outbox in the transaction of its token (Mailer.enqueue):
  both exist or neither does, and a slow SMTP server never slows a request.
- Older reset mails stay good until a reset succeeds (a user who asked twice may open
  either mail); then every reset and email-change token of the account is deleted.
- A reset ends every session of the account and clears its failed-login counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from authsvc.core.accounts import login_failure_counters
from authsvc.core.audit import audit
from authsvc.core.clock import Clock
from authsvc.core.errors import DomainError, FieldError, InvalidInput
from authsvc.core.events import NO_EVENTS, EventSink, sessions_revoked
from authsvc.core.passwords import PasswordHasher
from authsvc.core.ratelimits import Limit, RateLimited, RateLimiter
from authsvc.core.validation import PasswordPolicy, email_errors, normalize_email
from authsvc.mail.mailer import Mailer
from authsvc.mail.templates import human_duration
from authsvc.stores.account_tokens import AccountToken, Purpose, SQLAccountTokens, token_hash
from authsvc.stores.base import DuplicateEmail, SessionStore, User
from authsvc.stores.outbox import TransactionalDatabase, UnitOfWork
from authsvc.stores.sql import SQLUserStore

log = logging.getLogger(__name__)

#: Random bytes in a token (256 bits; the issue's floor is 128).
TOKEN_BYTES = 32
#: Longest token accepted: what token_urlsafe(32) makes, with room; anything longer is
#: refused before it is hashed or looked up.
MAX_TOKEN_CHARS = 128
#: Expired tokens deleted with each new one (a bounded statement beside the insert).
PRUNE_PER_ISSUE = 20
#: The pages under PUBLIC_URL (or the front end's, EMAIL_LINK_BASE_URL) per purpose.
LINK_PATHS: dict[Purpose, str] = {
    "confirm_email": "/confirm-email",
    "reset_password": "/reset-password",
    "change_email": "/confirm-email-change",
}


class EmailDisabled(DomainError):
    """No mail can be sent (production without SMTP_URL): nothing was recorded."""

    code = "EMAIL_DISABLED"

    def __init__(self) -> None:
        super().__init__("mail is disabled on this server: no link can be sent")


def invalid_token() -> InvalidInput:
    """The one answer for a spent, expired, unknown or wrong-purpose token."""
    return InvalidInput([FieldError("token", "invalid or expired link")])


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    link_base_url: str
    confirmation_ttl_s: int
    reset_ttl_s: int
    email_change_ttl_s: int
    resend_cooldown_s: int
    requests_per_ip: Limit
    requests_per_address: Limit
    #: The least time a request that must not tell answers in (seconds).
    answer_floor_s: float


@dataclass(frozen=True, slots=True)
class Issued:
    """A token just made: the secret that goes into the link, and its row."""

    secret: str
    row: AccountToken


class AccountLifecycle:
    def __init__(
        self,
        db: TransactionalDatabase,
        users: SQLUserStore,
        tokens: SQLAccountTokens,
        sessions: SessionStore,
        mailer: Mailer,
        hasher: PasswordHasher,
        limiter: RateLimiter,
        clock: Clock,
        *,
        policy: LifecyclePolicy,
        password_policy: PasswordPolicy,
        floor_overrun: Callable[[str], None] = lambda operation: None,
        events: EventSink = NO_EVENTS,
    ) -> None:
        """``floor_overrun``: told when a request took longer than its answer floor (its
        time then tells something: the floor is too low for this machine). ``events``:
        the webhooks' events, recorded in each change's transaction."""
        self._events = events
        self._db = db
        self._users = users
        self._tokens = tokens
        self._sessions = sessions
        self._mailer = mailer
        self._hasher = hasher
        self._limiter = limiter
        self._clock = clock
        self._policy = policy
        self._password_policy = password_policy
        self._floor_overrun = floor_overrun

    # --- requests anyone can make: same answer, same time -----------------------------

    async def request_email_confirmation(self, email: str, client_ip: str) -> None:
        """Send the confirmation mail again to an unconfirmed account; for a confirmed
        account or an unknown address, nothing, in the same time. Raises InvalidInput
        for an address that is not one, RateLimited, EmailDisabled."""
        async with self._answer_floor("request_email_confirmation"):
            address = await self._admit_request(email, client_ip)
            if address is None:
                return
            user = await self._users.get_by_email(address)
            if user is None or user.confirmed or user.disabled:
                return
            async with self._db.transaction() as tx:
                await self.send_confirmation(tx, user)
            audit("email_confirmation_requested", user_id=user.id)

    async def request_password_reset(self, email: str, client_ip: str) -> None:
        """Mail a reset link to the account of ``email``; for an unknown address,
        nothing, in the same time (no "you have no account" mail: it would let anyone
        send mail to any address). Raises InvalidInput, RateLimited, EmailDisabled."""
        async with self._answer_floor("request_password_reset"):
            address = await self._admit_request(email, client_ip)
            if address is None:
                return
            user = await self._users.get_by_email(address)
            if user is None or user.disabled:
                return
            issued = self._issue("reset_password", user, user.email)
            async with self._db.transaction() as tx:
                await self._record(tx, issued)
                await self._mailer.enqueue(
                    tx, "reset_password", to=user.email, link=self._link(issued),
                    expires_in=human_duration(self._policy.reset_ttl_s),
                )  # fmt: skip
            audit("password_reset_requested", user_id=user.id)

    async def _admit_request(self, email: str, client_ip: str) -> str | None:
        """The normalized address to act on, or None when the resend cooldown holds
        (answered as a success: it says nothing). Counted before any lookup, so that
        known and unknown addresses meet the same limits."""
        errors = email_errors(email)
        if errors:
            raise InvalidInput(errors)
        if not self._mailer.enabled:
            raise EmailDisabled()
        address = normalize_email(email)
        await self._limiter.hit("mail-ip", client_ip, self._policy.requests_per_ip)
        return address if await self._may_mail("mail", address, "email") else None

    async def _may_mail(self, scope: str, address: str, path: str) -> bool:
        """Count a mail to ``address`` against its limit (RateLimited past it) and its
        resend cooldown: False while the cooldown holds (silently: the answer is the
        same, only no mail goes). ``scope``: whose buckets these are."""
        policy = self._policy
        await self._limiter.hit(f"{scope}-address", address, policy.requests_per_address,
                                path=path)  # fmt: skip
        if not policy.resend_cooldown_s:
            return True
        try:
            await self._limiter.hit(
                f"{scope}-cooldown", address, Limit(1, policy.resend_cooldown_s)
            )
        except RateLimited:
            return False
        return True

    @contextlib.asynccontextmanager
    async def _answer_floor(self, operation: str) -> AsyncIterator[None]:
        """Answer no sooner than the floor after the start, whatever happened inside
        (an error too: a refusal must not be faster for one kind of address)."""
        started = time.monotonic()
        try:
            yield
        finally:
            left = self._policy.answer_floor_s - (time.monotonic() - started)
            if left > 0:
                await asyncio.sleep(left)
            else:
                self._floor_overrun(operation)

    # --- the changes a token authorizes ------------------------------------------------

    async def create_unconfirmed(self, user: User) -> None:
        """Store a new account with its confirmation token and mail, in one
        transaction (EMAIL_CONFIRMATION=true). Raises DuplicateEmail."""
        async with self._db.transaction() as tx:
            await self._users.within(tx).create(user)
            await self.send_confirmation(tx, user)
            await self._events.record(tx, "user.registered", user_id=user.id)

    async def send_confirmation(self, tx: UnitOfWork, user: User) -> None:
        """Record a confirmation token for ``user`` and its mail, in ``tx`` (register
        calls it in the transaction that creates the account)."""
        issued = self._issue("confirm_email", user, user.email)
        await self._record(tx, issued)
        await self._mailer.enqueue(
            tx, "confirm_email", to=user.email, link=self._link(issued),
            expires_in=human_duration(self._policy.confirmation_ttl_s),
        )  # fmt: skip

    async def confirm_email(self, token: str) -> User:
        """Confirm the account the token was sent to. Raises InvalidInput (the token)."""
        hashed = _hashed(token)
        async with self._db.transaction() as tx:
            spent = await self._spend(tx, hashed, "confirm_email")
            users = self._users.within(tx)
            user = await users.get(spent.user_id)
            if user is None or user.email != spent.email or user.disabled:
                raise invalid_token()  # the address changed since, or disabled: rolled back
            if not user.confirmed:
                await users.set_confirmed(user.id, self._clock())
                await self._events.record(tx, "user.confirmed", user_id=user.id)
                user = await users.get(user.id) or user
        audit("email_confirmed", user_id=user.id)
        return user

    async def reset_password(self, token: str, new_password: str, client_ip: str) -> None:
        """Set a new password with a reset token: every session of the account ends,
        its failed-login counters are cleared, the other reset and email-change links
        stop working, and a "your password was changed" mail goes to the account.
        Raises InvalidInput (the token, the new password's rules), Busy."""
        hashed = _hashed(token)
        if hashed is None:
            raise invalid_token()
        # Cheap checks before the costly hash: a forged token costs no bcrypt.
        found = await self._tokens.find(hashed, "reset_password")
        if found is None or found.expires_at <= self._clock():
            raise invalid_token()
        user = await self._users.get(found.user_id)
        if user is None or user.email != found.email or user.disabled:
            raise invalid_token()
        errors = self._password_policy.errors(new_password, user.email, path="newPassword")
        if errors:
            raise InvalidInput(errors)
        with self._hasher.admitted():
            new_hash = await self._hasher.hash(new_password)
        # Sessions end first too: with Redis down the reset is refused with nothing
        # changed, rather than a new password beside the old sessions (an attacker's).
        ended = await self._sessions.revoke_all(user.id)
        async with self._db.transaction() as tx:
            spent = await self._spend(tx, hashed, "reset_password")  # a racer lost here
            users = self._users.within(tx)
            current = await users.get(spent.user_id)
            if current is None or current.email != spent.email or current.disabled:
                raise invalid_token()
            await users.set_password_hash(current.id, new_hash, self._clock())
            await self._tokens.within(tx).delete_for(current.id, ("reset_password", "change_email"))
            await self._mailer.enqueue(tx, "password_changed", to=current.email)
            await self._events.record(tx, "password.reset", user_id=current.id)
        # Again once the new hash is committed (SessionStore.revoke_all): a login that
        # read the old hash meanwhile is refused too.
        ended += await self._sessions.revoke_all(current.id)
        for scope, subject in login_failure_counters(current.email, client_ip):
            await self._limiter.reset(scope, subject)
        audit("password_reset", user_id=current.id)
        await sessions_revoked(self._events, current.id, "password_reset", sessions=ended)

    async def request_email_change(self, user: User, new_email: str, password: str) -> None:
        """Mail a confirmation link to ``new_email`` and a notice to the current
        address. An address another account has gets the same answer and no mail (the
        notice still goes): the answer tells nobody which addresses have accounts.
        Raises InvalidInput (the password, the address), RateLimited, Busy,
        EmailDisabled."""
        errors = email_errors(new_email, path="newEmail")
        if errors:
            raise InvalidInput(errors)
        # The row itself, not the few seconds old copy the access check may have
        # used: a password changed just now is the one to check.
        user = await self._users.get(user.id) or user
        if not self._mailer.enabled:
            raise EmailDisabled()
        address = normalize_email(new_email)
        limit = self._limiter.policy.password_changes_per_account
        await self._limiter.hit("email-change", user.id, limit, path="currentPassword")
        with self._hasher.admitted():
            matched = await self._hasher.verify(password, user.password_hash)
        if not matched:
            raise InvalidInput([FieldError("currentPassword", "invalid password")])
        if address == user.email:
            raise InvalidInput([FieldError("newEmail", "is already the account's address")])
        async with self._answer_floor("request_email_change"):
            await self._request_email_change(user, address)
        audit("email_change_requested", user_id=user.id)

    async def _request_email_change(self, user: User, address: str) -> None:
        """After the password: what must not tell whether ``address`` has an account.
        The new address's mail is limited as every mail to an address is (per address,
        and a silent cooldown), whichever account asks: else accounts could take turns
        to flood one mailbox with working links."""
        # Buckets of their own: spent by strangers' accounts, the address's own
        # requests (its reset, its confirmation) must not be refused or silenced.
        may_mail = await self._may_mail("change", address, "newEmail")
        taken = await self._users.get_by_email(address) is not None
        async with self._db.transaction() as tx:
            if not taken and may_mail:
                issued = self._issue("change_email", user, address)
                await self._record(tx, issued)
                await self._mailer.enqueue(
                    tx, "email_change_confirm", to=address, link=self._link(issued),
                    expires_in=human_duration(self._policy.email_change_ttl_s),
                )  # fmt: skip
            await self._mailer.enqueue(
                tx, "email_change_notice", to=user.email, new_email=address, completed=False,
                expires_in=human_duration(self._policy.email_change_ttl_s),
            )  # fmt: skip

    async def confirm_email_change(self, token: str) -> User:
        """Switch the account to the address the token was sent to; the old address is
        told. Two accounts racing for one address: the unique index picks one, the
        other gets "already taken" and keeps its token. Raises InvalidInput."""
        hashed = _hashed(token)
        async with self._db.transaction() as tx:
            spent = await self._spend(tx, hashed, "change_email")
            users = self._users.within(tx)
            user = await users.get(spent.user_id)
            if user is None or user.disabled:
                raise invalid_token()
            try:
                await users.set_email(user.id, spent.email, self._clock())
            except DuplicateEmail:
                raise InvalidInput([FieldError("newEmail", "already taken")]) from None
            await self._tokens.within(tx).delete_for(
                user.id, ("reset_password", "change_email", "confirm_email")
            )
            await self._mailer.enqueue(
                tx, "email_change_notice", to=user.email, new_email=spent.email, completed=True
            )
            await self._events.record(tx, "email.changed", user_id=user.id)
            changed = await users.get(user.id)
        assert changed is not None
        audit("email_changed", user_id=user.id)
        return changed

    async def _spend(self, tx: UnitOfWork, hashed: str | None, purpose: Purpose) -> AccountToken:
        """Take the token in ``tx``, or raise the one token error (rolling ``tx`` back)."""
        if hashed is None:
            raise invalid_token()
        spent = await self._tokens.within(tx).take(hashed, purpose)
        if spent is None or spent.expires_at <= self._clock():
            raise invalid_token()
        return spent

    async def _record(self, tx: UnitOfWork, issued: Issued) -> None:
        """Store a new token in ``tx``, and prune a few expired ones: the table holds
        what is live and little else, with no job of its own to run."""
        tokens = self._tokens.within(tx)
        await tokens.delete_expired(self._clock(), limit=PRUNE_PER_ISSUE)
        await tokens.add(issued.row)

    def _issue(self, purpose: Purpose, user: User, email: str) -> Issued:
        ttl = {
            "confirm_email": self._policy.confirmation_ttl_s,
            "reset_password": self._policy.reset_ttl_s,
            "change_email": self._policy.email_change_ttl_s,
        }[purpose]
        secret = secrets.token_urlsafe(TOKEN_BYTES)
        now = self._clock()
        row = AccountToken(token_hash(secret), purpose, user.id, email, now, now + _s(ttl))
        return Issued(secret, row)

    def _link(self, issued: Issued) -> str:
        path = LINK_PATHS[issued.row.purpose]
        return f"{self._policy.link_base_url}{path}?token={quote(issued.secret, safe='')}"

    async def forget_links(self, user_id: str) -> None:
        """Every link of the account stops working (it was disabled or deleted: a link
        must not outlive that, to work again once the account is enabled)."""
        await self._tokens.delete_for(user_id, tuple(LINK_PATHS))

    async def delete_expired(self, now: datetime | None = None) -> int:
        return await self._tokens.delete_expired(now or self._clock())


def _hashed(token: str) -> str | None:
    """The stored form of a token as sent, or None for one that cannot be ours (empty,
    too long): refused before any lookup, in time linear in its length."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    return token_hash(token)


def _s(seconds: int) -> timedelta:
    return timedelta(seconds=seconds)
