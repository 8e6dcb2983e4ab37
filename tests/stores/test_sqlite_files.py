"""The development files are the owner's alone: they hold password hashes, sessions
and the generated secrets."""

from __future__ import annotations

import os
import subprocess

from authsvc.stores import sqlite
from tests.e2e.processes import authsvc_command, child_env


def mode(path) -> str:
    return oct(path.stat().st_mode & 0o777)


def test_a_first_run_makes_the_folder_0700_and_its_files_0600(tmp_path):
    old_umask = os.umask(0o022)  # the usual one: it would leave 0755 and 0644
    try:
        listed = subprocess.run(
            authsvc_command("users", "list"), cwd=tmp_path, env=child_env({}),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        os.umask(old_umask)
    assert listed.returncode == 0, listed.stderr
    folder = tmp_path / ".authsvc"
    assert mode(folder) == "0o700"
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    assert {"authsvc.sqlite3", "dev-secrets.json"} <= set(files)
    for name in files:  # the -wal and -shm files too, when SQLite left them
        assert mode(folder / name) == "0o600", name


def test_an_existing_database_file_that_others_could_read_is_tightened(io_loop, tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o755)
    path = folder / "old.sqlite3"
    path.touch(mode=0o644)
    path.chmod(0o644)
    db = io_loop.run_sync(lambda: sqlite.SQLiteDatabase.open(str(path), 3.0))
    try:
        io_loop.run_sync(db.ping)
    finally:
        io_loop.run_sync(db.close)
    assert mode(path) == "0o600"
    assert mode(folder) == "0o755"  # a folder that was there is not the store's to change
