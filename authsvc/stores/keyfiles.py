"""Private signing keys as PEM files in one folder (JWT_KEYS_DIR).

Files are named by their creation time (``20261126T153000123456Z.pem``), so sorting by
name lists them oldest first on every host; ``signing-kid`` in the folder, when present,
names the key that signs (else the newest does).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from authsvc.core.keys import PrivateKey

SIGNING_KID_FILE = "signing-kid"


def load_pem(pem: bytes, source: str) -> PrivateKey:
    """A private key from unencrypted PEM. Raises ValueError naming ``source``."""
    from cryptography.hazmat.primitives import serialization  # see optional_libraries

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{source} holds no unencrypted PEM private key") from exc
    return key  # type: ignore[return-value]  # the ring checks it fits the algorithm


def key_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pem")) if folder.is_dir() else []


def load_key_files(folder: Path) -> list[tuple[Path, PrivateKey]]:
    """Every key of the folder, oldest first."""
    return [(path, load_pem(path.read_bytes(), str(path))) for path in key_files(folder)]


def write_key(folder: Path, key: PrivateKey) -> Path:
    """Store ``key`` as a new file, readable by its owner only."""
    from cryptography.hazmat.primitives import serialization

    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / (datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + ".pem")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return path


def read_signing_kid(folder: Path) -> str | None:
    path = folder / SIGNING_KID_FILE
    return path.read_text().strip() or None if path.is_file() else None


def write_signing_kid(folder: Path, kid: str) -> None:
    (folder / SIGNING_KID_FILE).write_text(kid + "\n")
