"""The key rings the settings name, and the `authsvc keys` commands that manage them.

Access tokens: HMAC with JWT_ACCESS_SECRET, or the private keys of JWT_KEYS_DIR (and
JWT_PRIVATE_KEY). Refresh tokens: always HMAC with JWT_REFRESH_SECRET, since only
authsvc ever verifies them. `rotate` records when the former key stopped signing, so
that the ring retires it by itself (core/keys.py); workers follow the folder
(key_reload.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from authsvc.core.clock import Clock, utc_now
from authsvc.core.keys import (
    Key,
    KeyConfigError,
    KeyRing,
    KeyState,
    asymmetric_key,
    generate_private_key,
    hmac_key,
)
from authsvc.settings import ConfigError, Settings
from authsvc.stores import keyfiles

log = logging.getLogger(__name__)


def refresh_ring(settings: Settings) -> KeyRing:
    return KeyRing(settings.refresh_algorithm, [hmac_key(_secret(settings, "refresh"))])


def access_ring(settings: Settings, clock: Clock = utc_now) -> KeyRing:
    """The access token keys. Outside production a missing asymmetric key is generated
    into JWT_KEYS_DIR; production raises ConfigError, one line naming what to do."""
    algorithm = settings.jwt_algorithm
    if settings.uses_hmac_access_tokens:
        return KeyRing(algorithm, [hmac_key(_secret(settings, "access"))])
    try:
        no_key = settings.jwt_private_key is None
        if no_key and not keyfiles.key_files(Path(settings.jwt_keys_dir)):
            if settings.is_production:
                raise ConfigError(
                    f"JWT_ALGORITHM={algorithm} needs a private key: run `authsvc keys "
                    f"generate` (JWT_KEYS_DIR={settings.jwt_keys_dir}) or set JWT_PRIVATE_KEY"
                )
            info = generate_key(settings)
            log.warning("no %s key found: generated %s (development only)", algorithm, info.source)
        return load_access_ring(settings, clock, records_required=False)
    except (KeyConfigError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def load_access_ring(
    settings: Settings, clock: Clock = utc_now, *, records_required: bool = True
) -> KeyRing:
    """The asymmetric ring as the folder holds it now, generating nothing. Raises
    KeyConfigError, ValueError (a signing key or, if ``records_required``, retirement
    records that cannot be read) or OSError. Without ``records_required`` (a worker's
    start, which has no ring to keep) unreadable records are lost: every former signing
    key is then refused (it may be long expired), the safe side: the holders of its
    tokens renew."""
    folder = Path(settings.jwt_keys_dir)
    lost = False
    try:
        retired = keyfiles.read_retired(folder)
    except ValueError as exc:
        if records_required:
            raise
        log.warning(
            "JWT_KEYS_DIR: %s cannot be read, former keys refused: %s", keyfiles.RETIRED_FILE, exc
        )
        retired, lost = {}, True
    passed_over: list[str] = []
    keys = [key for _, key in _keyed_sources(settings, passed_over)]
    if not keys and passed_over:  # say why, not only that there is none
        raise KeyConfigError(
            f"no usable {settings.jwt_algorithm} key in {folder}: {'; '.join(passed_over)}"
        )
    return KeyRing(
        settings.jwt_algorithm,
        keys,
        _signing_kid(settings),
        retired=retired,
        retention_s=settings.key_retention_s,
        clock=clock,
        records_lost=lost,
    )


@dataclass(frozen=True, slots=True)
class KeyInfo:
    kid: str
    source: str
    signing: bool
    state: KeyState | None = None


def list_keys(settings: Settings) -> list[KeyInfo]:
    ring = access_ring(settings)
    sources = {key.kid: source for source, key in _keyed_sources(settings)}
    return [
        KeyInfo(
            kid=key.kid or "-",
            source=sources.get(key.kid, "-"),
            signing=key is ring.signing,
            state=ring.state(key),
        )
        for key in ring.keys
    ]


def generate_key(settings: Settings) -> KeyInfo:
    """Add a key to JWT_KEYS_DIR. It is published at once; it signs only if it is the
    first key (else `rotate` makes it sign), so verifiers can fetch it beforehand."""
    _require_asymmetric(settings)
    folder = Path(settings.jwt_keys_dir)
    existing = _usable_files(settings)
    if existing and keyfiles.read_signing_kid(folder) is None:
        # Pin the key that signs now (the newest), or the new one would take over.
        keyfiles.write_signing_kid(folder, existing[-1][1])
    path = keyfiles.write_key(folder, generate_private_key(settings.jwt_algorithm))
    kid = _file_kid(settings, path)
    assert kid is not None
    if not existing:
        keyfiles.write_signing_kid(folder, kid)
    return KeyInfo(kid=kid, source=str(path), signing=not existing)


def rotate_key(settings: Settings, now: datetime | None = None) -> KeyInfo:
    """Make the newest key of JWT_KEYS_DIR sign (generating one if the newest already
    signs). The key that signed until now is recorded as retired now: it keeps
    verifying, and stays published, for JWT_ACCESS_AGE_S + JWT_LEEWAY_S +
    JWT_KEY_RETIRE_MARGIN_S, then drops out by itself."""
    _require_asymmetric(settings)
    folder = Path(settings.jwt_keys_dir)
    files = _usable_files(settings)
    previous = access_ring(settings).signing.kid
    newest = files[-1][1] if files else None
    retired = keyfiles.read_retired(folder)
    # A retired key (a copy of it named as the newest file) never signs again.
    if newest is None or newest == keyfiles.read_signing_kid(folder) or newest in retired:
        info = generate_key(settings)
        newest, source = info.kid, info.source
    else:
        source = str(files[-1][0])
    if previous is not None and previous != newest:
        retired[previous] = now or utc_now()
    # The record first: a worker that reads between the two writes sees the old key
    # still signing (signing wins over a record), never a signing key with no record.
    keyfiles.write_retired(folder, retired)
    keyfiles.write_signing_kid(folder, newest)
    return KeyInfo(kid=newest, source=source, signing=True)


def published_for_s(info: KeyInfo) -> float | None:
    """How long the key of ``info`` has been in the folder (so in the JWKS)."""
    created = keyfiles.created_at(Path(info.source))
    return None if created is None else (utc_now() - created).total_seconds()


def remove_key(settings: Settings, kid: str) -> str:
    """Delete a key now, every file that holds it (a copy left beside it would bring
    it back as a next key): tokens it signed stop verifying in every worker within
    key_reload's bound. Refuses the signing key and JWT_PRIVATE_KEY's. Returns the
    files removed."""
    _require_asymmetric(settings)
    folder = Path(settings.jwt_keys_dir)
    if kid == access_ring(settings).signing.kid:
        raise ConfigError(f"key {kid} signs: rotate to another key before removing it")
    sources = [source for source, key in _keyed_sources(settings) if key.kid == kid]
    if "JWT_PRIVATE_KEY" in sources:
        raise ConfigError(f"key {kid} is JWT_PRIVATE_KEY's: unset it there")
    if not sources:
        raise ConfigError(f"no key {kid} in {folder}")
    for source in sources:
        Path(source).unlink()
    retired = keyfiles.read_retired(folder)
    if retired.pop(kid, None) is not None:
        keyfiles.write_retired(folder, retired)
    return ", ".join(sources)


def _keyed_sources(
    settings: Settings, passed_over: list[str] | None = None
) -> list[tuple[str, Key]]:
    """(where it came from, key): files oldest first, then JWT_PRIVATE_KEY, which thus
    signs by default when set."""
    algorithm = settings.jwt_algorithm
    found = []
    for path in keyfiles.key_files(Path(settings.jwt_keys_dir)):
        # A file that is no key of this algorithm (half copied in by hand, another
        # kind of key) is passed over with a warning, as every worker's reload does:
        # a worker that starts (a replacement for one that died) must not fail on
        # what the running workers serve beside. If it is the signing key, the ring
        # refuses to be built: nothing could sign.
        try:
            private = keyfiles.load_pem(keyfiles.read_file(path), str(path))
            found.append((str(path), asymmetric_key(algorithm, private)))
        except (ValueError, OSError) as exc:  # KeyConfigError is a ValueError
            log.warning("JWT_KEYS_DIR: %s passed over, no usable %s key: %s",
                        path.name, algorithm, exc)  # fmt: skip
            if passed_over is not None:
                passed_over.append(f"{path.name}: {exc}")
    if settings.jwt_private_key is not None:
        pem = settings.jwt_private_key.get_secret_value().encode()
        found.append(
            (
                "JWT_PRIVATE_KEY",
                asymmetric_key(algorithm, keyfiles.load_pem(pem, "JWT_PRIVATE_KEY")),
            )
        )
    return found


def _usable_files(settings: Settings) -> list[tuple[Path, str]]:
    """(file, kid) of every usable key file, oldest first: what a file that is no key
    (passed over with a warning) leaves, so that `keys rotate` never picks it and
    `keys remove` still reaches a leaked key beside it."""
    return [
        (Path(source), key.kid)
        for source, key in _keyed_sources(settings)
        if source != "JWT_PRIVATE_KEY" and key.kid is not None
    ]


def _signing_kid(settings: Settings) -> str | None:
    if settings.jwt_signing_kid:
        return settings.jwt_signing_kid
    if settings.jwt_private_key is not None:
        return None  # the environment's key, last in the ring
    return keyfiles.read_signing_kid(Path(settings.jwt_keys_dir))


def _file_kid(settings: Settings, path: Path) -> str | None:
    key = asymmetric_key(
        settings.jwt_algorithm, keyfiles.load_pem(keyfiles.read_file(path), str(path))
    )
    return key.kid


def _require_asymmetric(settings: Settings) -> None:
    if settings.uses_hmac_access_tokens:
        raise ConfigError(
            f"JWT_ALGORITHM={settings.jwt_algorithm} signs with JWT_ACCESS_SECRET: key files "
            "are for EdDSA, ES256 and RS256"
        )


def _secret(settings: Settings, kind: str) -> str:
    secret = settings.jwt_access_secret if kind == "access" else settings.jwt_refresh_secret
    if secret is None:  # load_settings fills these outside production; production checks
        raise ConfigError(f"JWT_{kind.upper()}_SECRET is missing")
    return secret.get_secret_value()
