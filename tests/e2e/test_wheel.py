"""A wheel installed outside the checkout serves: the SDL and the migrations ship in it."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
import zipfile
from pathlib import Path

from tests.e2e.processes import ServiceProcess
from tests.helpers import ME, PASSWORD, REGISTER, new_email

ROOT = Path(__file__).resolve().parents[2]


def test_installed_wheel_serves(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = wheels.glob("authsvc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "authsvc/schema/authsvc.graphql" in names
    assert "authsvc/stores/sql/mysql/0001_users.sql" in names
    assert "authsvc/stores/sql/sqlite/0001_users_sessions.sql" in names
    assert "authsvc/graphql/static/vendor/graphiql.min.js" in names
    assert "authsvc/core/data/common-passwords.txt.gz" in names
    assert "authsvc/mail/templates/confirm_email.html" in names
    assert "authsvc/graphql/templates/form.html" in names
    assert "authsvc/graphql/templates/page.css" in names
    assert "authsvc/stores/sql/mysql/0003_outbox.sql" in names

    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {"PYTHONPATH": str(site), "BCRYPT_ROUNDS": "4"}
    service = ServiceProcess(workdir, env)
    try:
        _, body = service.graphql(REGISTER, {"email": new_email(), "password": PASSWORD})
        assert body["data"]["register"]["status"] == 201
        _, body = service.graphql(ME)
        assert body["errors"][0]["message"] == "Unauthorized"
        page_url = f"http://127.0.0.1:{service.port}/confirm-email?token=t"
        with urllib.request.urlopen(page_url, timeout=10) as page:  # its templates load
            assert page.status == 200 and b"<form" in page.read()
        where = subprocess.run(
            [sys.executable, "-c", "import authsvc; print(authsvc.__file__)"],
            cwd=workdir,
            env=service.env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert where.stdout.startswith(str(site)), where.stdout
    finally:
        assert service.terminate() == 0
