"""Private signing keys as PEM files in one folder (JWT_KEYS_DIR), and their records.

Files are named by their creation time (``20261126T153000123456Z.pem``), so sorting by
name lists them oldest first on every host; ``signing-kid`` in the folder, when present,
names the key that signs (else the newest does); ``retired.json`` says when each former
signing key stopped signing ({kid: ISO 8601 UTC time}).

Every file is written whole under a temporary name and then renamed into place, so a
worker that reads the folder while `authsvc keys …` writes it never sees half a PEM.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from authsvc.core.keys import PrivateKey

SIGNING_KID_FILE = "signing-kid"
RETIRED_FILE = "retired.json"

#: What a folder looked like: (name, inode, size, mtime) of every entry, so that any
#: write, rename or removal in it (and a Kubernetes secret's symlink swap) changes it.
Fingerprint = tuple[tuple[str, int, int, int], ...]


def load_pem(pem: bytes, source: str) -> PrivateKey:
    """A private key from unencrypted PEM. Raises ValueError naming ``source``."""
    from cryptography.hazmat.primitives import serialization  # see optional_libraries

    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{source} holds no unencrypted PEM private key") from exc
    return key  # type: ignore[return-value]  # the ring checks it fits the algorithm


#: A key file, the signing kid or the records are a few KB: anything larger is no such
#: file (a symlink to /dev/zero would otherwise fill memory).
MAX_FILE_BYTES = 64 * 1024


def read_file(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES. Raises ValueError for
    anything else, without blocking: a FIFO named like a key once hung every reload and
    every starting worker in open()."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise ValueError(f"{path} cannot be opened: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if info.st_size > MAX_FILE_BYTES:
            raise ValueError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
        data = os.read(fd, MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    return data


def key_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pem")) if folder.is_dir() else []


def fingerprint(folder: Path) -> Fingerprint:
    """A few stat calls: cheap enough to ask every second. Empty for a missing folder."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return ()
    found = []
    for entry in entries:
        try:
            info = entry.stat()  # follows symlinks: the target's change counts
        except OSError:
            continue  # removed between the listing and the stat: the next look sees it
        found.append((entry.name, info.st_ino, info.st_size, info.st_mtime_ns))
    return tuple(sorted(found))


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
    temporary = _write_temporary(folder, path.name, pem)
    try:
        os.link(temporary, path)  # atomic, and refuses to replace an existing key
    finally:
        temporary.unlink()
    return path


def created_at(path: Path) -> datetime | None:
    """When the key file was written, from its name; None for a name of another form."""
    try:
        return datetime.strptime(path.stem, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def read_signing_kid(folder: Path) -> str | None:
    """The kid the folder names as signing; None when no such entry exists. Raises
    ValueError for an entry that is no small regular file."""
    raw = _read_if_there(folder / SIGNING_KID_FILE)
    return None if raw is None else raw.decode("utf-8", "replace").strip() or None


def write_signing_kid(folder: Path, kid: str) -> None:
    _replace(folder, SIGNING_KID_FILE, (kid + "\n").encode())


def read_retired(folder: Path) -> dict[str, datetime]:
    """When each former signing key stopped signing. Raises ValueError for a file that
    is not such a record."""
    path = folder / RETIRED_FILE
    raw = _read_if_there(path)  # a folder, a FIFO, a huge file: ValueError, not "none"
    if raw is None:
        return {}
    try:
        records = json.loads(raw)
        retired = {str(kid): datetime.fromisoformat(at) for kid, at in records.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} holds no {{kid: time}} record") from exc
    if any(at.tzinfo is None for at in retired.values()):
        raise ValueError(f"{path}: every time needs its UTC offset")
    return retired


def write_retired(folder: Path, retired: dict[str, datetime]) -> None:
    records = {kid: at.astimezone(UTC).isoformat() for kid, at in sorted(retired.items())}
    _replace(folder, RETIRED_FILE, (json.dumps(records, indent=2) + "\n").encode())


def _read_if_there(path: Path) -> bytes | None:
    """read_file's bytes, or None when nothing is there at all (a dangling symlink is
    something: read_file refuses it)."""
    if not path.exists() and not path.is_symlink():
        return None
    return read_file(path)


def _replace(folder: Path, name: str, content: bytes) -> None:
    os.replace(_write_temporary(folder, name, content), folder / name)


def _write_temporary(folder: Path, name: str, content: bytes) -> Path:
    """``content`` in a new owner-only file of ``folder`` whose name no reader looks at
    (it does not end in .pem), flushed to disk before it is renamed into place."""
    temporary = folder / f".{name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)
        fh.flush()
        os.fsync(fh.fileno())
    return temporary
