"""scripts/test_isaaclab.sh finds Python 3.12 under pyenv's root, and under CI=true a skip is a failure."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "test_isaaclab.sh"
FAKE_PYTHON = """#!/bin/sh
# passes the script's version check, then fails to create the venv (so nothing is downloaded)
if [ "$1" = "-c" ]; then exit 0; fi
echo "FAKE-PY312 $*" >&2
exit 3
"""

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("python3.12", path="/usr/bin:/bin") is not None,
    reason="needs bash, and no python3.12 in /usr/bin:/bin (the script would build a real Isaac Lab venv with it)",
)


def _fake_python(root: Path) -> Path:
    python = root / "versions" / "3.12.9" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return python


def _run(tmp_path: Path, ci: bool, **env: str) -> subprocess.CompletedProcess:
    base = {"HOME": str(tmp_path / "home"), "DAGMIX_CACHE_DIR": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    if ci:
        base["CI"] = "true"
    base.update(env)
    return subprocess.run(["bash", str(SCRIPT)], env=base, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("ci", [False, True])
def test_python312_under_pyenv_root_is_found(tmp_path, ci):
    _fake_python(tmp_path / "pyenv")
    res = _run(tmp_path, ci, PYENV_ROOT=str(tmp_path / "pyenv"))
    assert "FAKE-PY312 -m venv" in res.stderr  # the pyenv root's 3.12 was used (HOME has no .pyenv)
    assert "SKIPPED" in res.stderr and "could not build" in res.stderr
    assert res.returncode == (1 if ci else 0)


def test_pyenv_root_command_is_asked(tmp_path):
    _fake_python(tmp_path / "elsewhere")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pyenv").write_text(f"#!/bin/sh\necho {tmp_path / 'elsewhere'}\n")
    (bin_dir / "pyenv").chmod(0o755)
    res = _run(tmp_path, False, PATH=f"{bin_dir}:/usr/bin:/bin")
    assert "FAKE-PY312 -m venv" in res.stderr


@pytest.mark.parametrize("ci", [False, True])
def test_no_python312_is_a_skip_and_a_failure_under_ci(tmp_path, ci):
    res = _run(tmp_path, ci, PYENV_ROOT=str(tmp_path / "empty"))
    assert "SKIPPED" in res.stderr and "no Python 3.12 found" in res.stderr
    assert res.returncode == (1 if ci else 0)
