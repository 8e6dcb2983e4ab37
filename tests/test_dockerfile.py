"""The image's working directory and dotenv file, read from docker/Dockerfile (no
Docker engine runs here), and the CLI behaviour that the image relies on."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from tests.e2e.processes import authsvc_command, child_env

ROOT = Path(__file__).resolve().parent.parent


def final_stage() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile's last stage, continuations joined."""
    text = (ROOT / "docker" / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    instructions = [
        (word.upper(), rest.strip())
        for line in lines
        if line and not line.startswith("#")
        for word, _, rest in [line.partition(" ")]
    ]
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def test_the_image_runs_in_a_folder_only_the_service_owns():
    stage = final_stage()
    (user,) = [args for word, args in stage if word == "USER"]
    (workdir,) = [args for word, args in stage if word == "WORKDIR"]
    assert user == "10001"
    assert workdir == "/srv/authsvc"
    # Made by a RUN as the service's user and mode 0700 (WORKDIR alone would leave it
    # root's, 0755).
    runs = " ".join(args for word, args in stage if word == "RUN")
    assert "--uid 10001" in runs
    assert f"install -d -o authsvc -g authsvc -m 0700 {workdir}" in runs
    # USER before WORKDIR and the entrypoint: nothing runs as root from there on.
    words = [word for word, _ in stage]
    assert words.index("USER") < words.index("WORKDIR") < words.index("ENTRYPOINT")


def test_the_image_reads_the_one_dotenv_file_that_the_readme_names():
    (entrypoint,) = [args for word, args in final_stage() if word == "ENTRYPOINT"]
    command = shlex.split(entrypoint.strip("[]").replace(",", " "))
    assert command == ["authsvc", "--env-file", "/srv/authsvc/.env"]
    readme = (ROOT / "README.md").read_text()
    assert "reads no `.env` but\n`/srv/authsvc/.env`" in readme


def test_a_named_env_file_is_the_only_one_read(tmp_path):
    # What the image's entrypoint relies on: with --env-file, a .env in the working
    # directory (planted by someone else) is not read.
    (tmp_path / ".env").write_text("JWT_ISSUER=planted\n")
    chosen = tmp_path / "kept" / ".env"
    chosen.parent.mkdir()
    chosen.write_text("JWT_AUDIENCE=chosen\n")
    checked = subprocess.run(
        authsvc_command("--env-file", str(chosen), "check-config"), cwd=tmp_path,
        env=child_env({}), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "JWT_AUDIENCE=chosen\n" in checked.stdout
    assert "planted" not in checked.stdout
