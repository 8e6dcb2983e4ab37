"""Accounts: registration and credential checks."""

from __future__ import annotations

import uuid

from authsvc.core.clock import Clock
from authsvc.core.errors import FieldError, InvalidInput, invalid_login
from authsvc.core.passwords import PasswordHasher
from authsvc.core.validation import email_errors, normalize_email, password_errors
from authsvc.stores.base import DuplicateEmail, User, UserStore


class AccountService:
    def __init__(
        self,
        users: UserStore,
        hasher: PasswordHasher,
        clock: Clock,
        *,
        password_min_length: int,
        email_confirmation: bool,
    ) -> None:
        self._users = users
        self._hasher = hasher
        self._clock = clock
        self._password_min_length = password_min_length
        self._email_confirmation = email_confirmation

    async def register(self, email: str, password: str) -> User:
        """Create an account. Raises InvalidInput with every field error, or
        "already taken" when the email exists (also when a concurrent call won)."""
        errors = email_errors(email) + password_errors(password, self._password_min_length)
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
        return user

    async def check_credentials(self, email: str, password: str) -> User:
        """The user whose email and password these are, if they may log in.

        Raises the one "invalid login" InvalidInput for an unknown email, a wrong
        password, a disabled or an unconfirmed account, after the same hash work.
        """
        user = await self._users.get_by_email(normalize_email(email))
        if user is None:
            await self._hasher.burn()
            raise invalid_login()
        # The password is checked first, always: answering "not confirmed" before it
        # (as the Node service did) told anyone which emails have accounts.
        if not await self._hasher.verify(password, user.password_hash):
            raise invalid_login()
        if user.disabled or (self._email_confirmation and not user.confirmed):
            raise invalid_login()
        return user


def _email_taken() -> InvalidInput:
    return InvalidInput([FieldError("email", "already taken")])
