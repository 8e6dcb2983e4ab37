"""Libraries that `authsvc serve` leaves unloaded when its configuration has no use for
them.

PyJWT and PyMySQL import cryptography whenever it is installed: PyJWT for the
asymmetric algorithms, PyMySQL for MySQL 8's RSA password exchange
(``caching_sha2_password`` and ``sha256_password`` over plain TCP). With HMAC-signed
tokens and MariaDB or SQLite, nothing uses it, yet its Rust extension and the OpenSSL
inside it cost each worker about 5 MB of memory. Marking it absent before they load
makes both take the path they take where it is not installed (Python's import system:
a ``None`` in ``sys.modules`` makes the import raise ModuleNotFoundError).
"""

from __future__ import annotations

import sys

from authsvc.settings import Settings

CRYPTOGRAPHY = "cryptography"


def needs_cryptography(settings: Settings) -> bool:
    """Asymmetric access tokens need it, and so may MySQL (not MariaDB): MySQL 8's
    default authentication sends the password RSA-encrypted over plain TCP. A database
    host without DB_TYPE may be either."""
    return not settings.uses_hmac_access_tokens or (
        settings.users_backend == "mysql" and settings.db_type != "mariadb"
    )


def leave_out_cryptography() -> bool:
    """Make cryptography unimportable in this process, unless it is loaded already.
    Call before PyJWT and PyMySQL are imported; returns whether it was left out."""
    if CRYPTOGRAPHY in sys.modules:
        return sys.modules[CRYPTOGRAPHY] is None
    sys.modules[CRYPTOGRAPHY] = None  # type: ignore[assignment]  # see the module docstring
    return True
