"""Workers follow JWT_KEYS_DIR (authsvc.key_reload) over real files: a rotation is
picked up, a half-written file never replaces the keys in use, and a look at a folder
that did not change costs microseconds."""

from __future__ import annotations

import logging
import os
import time
from datetime import timedelta
from pathlib import Path

import jwt
import pytest

from authsvc import signing
from authsvc.core.clock import utc_now
from authsvc.core.tokens import TokenCodec, TokenType
from authsvc.key_reload import KeyReload
from authsvc.settings import ConfigError, load_settings
from authsvc.stores import keyfiles


def eddsa_settings(tmp_path, **overrides):
    return load_settings(
        None, jwt_algorithm="EdDSA", jwt_keys_dir=str(tmp_path / "keys"),
        sqlite_path=str(tmp_path / "db"), **overrides,
    )  # fmt: skip


def codec(settings) -> TokenCodec:
    return TokenCodec(
        access=TokenType("access", signing.access_ring(settings), settings.jwt_access_age_s),
        refresh=TokenType("refresh", signing.refresh_ring(settings), 60),
        issuer="authsvc", audience="authsvc", leeway_s=0, clock=utc_now,
    )  # fmt: skip


def kid_of(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


async def test_a_rotation_is_followed_and_the_former_key_retires(tmp_path):
    settings = eddsa_settings(tmp_path)
    first = signing.generate_key(settings)
    tokens = codec(settings)
    reload = KeyReload(settings, tokens, utc_now)
    await reload.check()  # the first look reads the folder once
    assert not await reload.check()  # nothing changed: nothing read
    old_token = tokens.issue(tokens.access, "u", "s")

    upcoming = signing.generate_key(settings)
    assert await reload.check()
    assert kid_of(tokens.issue(tokens.access, "u", "s")) == first.kid  # published only
    assert upcoming.kid in [k["kid"] for k in tokens.access.ring.jwks()["keys"]]

    before = utc_now()
    signing.rotate_key(settings)
    assert await reload.check()
    assert kid_of(tokens.issue(tokens.access, "u", "s")) == upcoming.kid
    assert tokens.verify(tokens.access, old_token).sub == "u"  # the old key still verifies
    retired_at = keyfiles.read_retired(tmp_path / "keys")[first.kid]
    assert before <= retired_at <= utc_now()
    states = {info.kid: info.state for info in signing.list_keys(settings)}
    assert states[upcoming.kid].name == "signing"  # type: ignore[union-attr]
    assert states[first.kid].name == "retired"  # type: ignore[union-attr]
    assert states[first.kid].until == retired_at + timedelta(  # type: ignore[union-attr]
        seconds=settings.jwt_access_age_s + settings.jwt_key_retire_margin_s
    )
    # Every file was written whole and renamed into place: no temporary one is left.
    assert sorted(p.name for p in (tmp_path / "keys").iterdir() if p.suffix != ".pem") == [
        "retired.json", "signing-kid",
    ]  # fmt: skip


async def test_a_half_written_key_is_passed_over_by_running_and_starting_workers(tmp_path, caplog):
    settings = eddsa_settings(tmp_path)
    first = signing.generate_key(settings)
    tokens = codec(settings)
    reload = KeyReload(settings, tokens, utc_now)
    await reload.check()
    donor = signing.generate_key(eddsa_settings(tmp_path / "other"))
    pem = Path(donor.source).read_bytes()
    broken = tmp_path / "keys" / "29991231T000000000000Z.pem"  # copied in by hand, not atomically
    broken.write_bytes(pem[: len(pem) // 2])
    with caplog.at_level(logging.WARNING, logger="authsvc.signing"):
        await reload.check()
        assert not await reload.check()  # the same broken folder: said once
        # A worker that starts now (the replacement of one that died) starts too:
        # the outside attack's outage was every replacement failing on this file.
        started = codec(settings)
    assert caplog.text.count("passed over") == 2
    for ring in (tokens.access.ring, started.access.ring):
        assert ring.signing.kid == first.kid
        assert [k["kid"] for k in ring.jwks()["keys"]] == [first.kid]
    broken.write_bytes(pem)  # the copy completes
    assert await reload.check()
    assert donor.kid in [k["kid"] for k in tokens.access.ring.jwks()["keys"]]


async def test_an_unreadable_signing_key_keeps_the_ring_in_use(tmp_path, caplog):
    """Nothing could sign without it: a running worker keeps what it has, a starting
    one refuses with one line."""
    settings = eddsa_settings(tmp_path)
    first = signing.generate_key(settings)
    signing.generate_key(settings)  # the next one: published, not signing
    tokens = codec(settings)
    reload = KeyReload(settings, tokens, utc_now)
    await reload.check()
    ring = tokens.access.ring
    Path(first.source).write_bytes(b"-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n")
    with caplog.at_level(logging.WARNING, logger="authsvc.key_reload"):
        assert not await reload.check()
    assert tokens.access.ring is ring
    assert "cannot be read; keeping the keys in use" in caplog.text
    with pytest.raises(ConfigError, match="names no loaded key"):
        signing.access_ring(settings)


async def test_a_look_at_an_unchanged_folder_costs_microseconds(tmp_path):
    """What a worker pays each second when no key changed: one scandir and a stat per
    file, on the loop. The bound is loose for a busy test machine; the README quotes
    the measured figure."""
    settings = eddsa_settings(tmp_path)
    for _ in range(3):
        signing.generate_key(settings)
    signing.rotate_key(settings)
    reload = KeyReload(settings, codec(settings), utc_now)
    await reload.check()
    looks = 2000
    started = time.perf_counter()
    for _ in range(looks):
        await reload.check()
    per_look_us = (time.perf_counter() - started) / looks * 1e6
    print(f"one look at an unchanged folder of 5 files: {per_look_us:.1f} us")
    assert per_look_us < 500


def test_a_starting_worker_refuses_former_keys_when_the_records_cannot_be_read(tmp_path, caplog):
    """From the second attack: a hand-edited retired.json made every replacement
    worker fail at start. A starting worker has no ring to keep: it starts, refusing
    every former key (which may have expired long ago)."""
    settings = eddsa_settings(tmp_path)
    first = signing.generate_key(settings)
    signing.generate_key(settings)
    second = signing.rotate_key(settings)
    (tmp_path / "keys" / keyfiles.RETIRED_FILE).write_text(
        f'{{"{first.kid}": "2026-12-06T22:36:19"}}'
    )
    with caplog.at_level(logging.WARNING, logger="authsvc.signing"):
        ring = signing.access_ring(settings)
    assert "retired.json cannot be read, former keys refused" in caplog.text
    assert ring.signing.kid == second.kid
    # The third attack: read as "no records", a long-expired key came back (retired
    # until removed). Lost records refuse every former key instead.
    assert ring.state(next(k for k in ring.keys if k.kid == first.kid)).name == "expired"
    assert [k["kid"] for k in ring.jwks()["keys"]] == [second.kid]
    with pytest.raises(ValueError, match="UTC offset"):  # a running worker keeps its ring
        signing.load_access_ring(settings)
    for broken in ("dir", "fifo"):
        records = tmp_path / "keys" / keyfiles.RETIRED_FILE
        records.unlink()
        records.mkdir() if broken == "dir" else os.mkfifo(records)
        assert (
            signing.access_ring(settings)
            .state(next(k for k in ring.keys if k.kid == first.kid))
            .name
            == "expired"
        ), broken
        records.rmdir() if broken == "dir" else records.unlink()
        records.write_text("{}")


def test_key_commands_pass_over_a_file_that_is_no_key(tmp_path):
    """`keys rotate` never picks such a file, and `keys remove` still reaches a leaked
    key beside it (both failed with a traceback)."""
    settings = eddsa_settings(tmp_path)
    first = signing.generate_key(settings)
    upcoming = signing.generate_key(settings)
    (tmp_path / "keys" / "29991231T000000000000Z.pem").write_bytes(b"junk")
    (tmp_path / "keys" / "29991231T000000000001Z.pem").mkdir()
    assert signing.rotate_key(settings).kid == upcoming.kid
    # A copy of the retired key beside it (a backup): remove takes both, so it cannot
    # come back as a next key; and rotate never makes a retired key sign again.
    copy = tmp_path / "keys" / "backup-copy.pem"
    copy.write_bytes(Path(first.source).read_bytes())
    assert signing.rotate_key(settings).kid not in (first.kid, upcoming.kid)
    removed = signing.remove_key(settings, first.kid)
    assert first.source in removed and str(copy) in removed
    assert not copy.exists() and not Path(first.source).exists()
    assert first.kid not in [info.kid for info in signing.list_keys(settings)]


def test_a_fifo_or_huge_file_named_like_a_key_is_passed_over_without_blocking(tmp_path):
    """The third attack: a FIFO named *.pem hung every reload (a removed key stayed
    accepted) and every starting worker, in open()."""
    settings = eddsa_settings(tmp_path)
    first = signing.generate_key(settings)
    os.mkfifo(tmp_path / "keys" / "zz.pem")
    (tmp_path / "keys" / "zzz.pem").write_bytes(b"A" * (keyfiles.MAX_FILE_BYTES + 1))
    started = time.monotonic()
    ring = signing.access_ring(settings)
    assert time.monotonic() - started < 2
    assert [k["kid"] for k in ring.jwks()["keys"]] == [first.kid]
