"""`.ci/system-packages`, which `make test` and `.ci/run` share: what the suite needs from
the system is installed or named, never silently missing."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "system-packages"
HIDDEN = {"wrk", "nginx", "chromium"}


def path_without(tmp_path: Path, hidden: set[str]) -> Path:
    """A bin folder with every command of /usr/bin and /bin but ``hidden``."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for source in (Path("/usr/local/bin"), Path("/usr/bin"), Path("/bin"), Path("/usr/sbin")):
        for tool in source.iterdir():
            target = folder / tool.name
            if tool.name not in hidden and not target.exists():
                target.symlink_to(tool)
    return folder


def test_a_user_who_cannot_install_gets_one_line_naming_the_packages():
    assert os.geteuid() == 0, "this test drops to the nobody user, which needs root"
    # pytest's tmp_path is private to root; nobody must be able to reach the folder.
    with tempfile.TemporaryDirectory() as name:
        place = Path(name)
        place.chmod(0o755)
        folder = path_without(place, HIDDEN)
        script = shutil.copy(SCRIPT, place / "system-packages")  # the checkout may be private
        env = {"PATH": str(folder), "SBIN": str(place / "no-sbin"), "HOME": name}
        result = subprocess.run(
            ["runuser", "-u", "nobody", "--", "bash", str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=name,
        )
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "wrk nginx-light chromium" in lines[0]
    assert "mariadb-server" not in lines[0] and "redis-server" not in lines[0]


def test_nothing_is_asked_for_when_everything_is_there():
    result = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    assert "installing" not in result.stdout
    for tool in HIDDEN:
        assert shutil.which(tool) or Path("/usr/sbin", tool).exists(), tool


def test_make_test_and_ci_run_share_the_script():
    assert "system-packages" in (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    test_target = next(line for line in makefile.splitlines() if line.startswith("test:"))
    assert "system-packages" in test_target
