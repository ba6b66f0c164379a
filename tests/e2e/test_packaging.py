"""Build the wheel, install it into a fresh venv, and run the installed entry points.

This catches what an editable install hides: files missing from the wheel (the .proto
contract, generated stubs), entry points that only work because the checkout is on
``sys.path``, and import names that resolve to the repository instead of the install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import proto

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
PROGRAMS = ("mez", "mezd", "mezctl")
PROTO_FILES = ("proto/v1/auth.proto", "proto/v1/auth_pb2.py", "proto/v1/auth_pb2.pyi")
# Generous: pip may have to fetch grpcio, cryptography etc. from PyPI on a cold cache.
TIMEOUT = 600
# Never copied into the build tree: local state, caches and earlier build output
# (a stale build/lib can leak deleted modules into the wheel).
IGNORED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    "*.pyc",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
)


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    elsewhere: Path

    @property
    def bin(self) -> Path:
        return self.venv / "bin"


def _clean_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "FORCE_COLOR")
    }
    env.update({"NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"})
    return env


def _run(
    cmd: list[str | Path], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _check(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}\n"
        f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}"
    )
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("packaging")
    # Build from a copy so the build never writes build/ or *.egg-info into the checkout.
    src = root / "src"
    shutil.copytree(REPO_ROOT, src, ignore=IGNORED)
    outdir = root / "wheelhouse"
    _check(
        _run(
            [sys.executable, "-m", "build", "--wheel", "--outdir", outdir, src],
            cwd=src,
            timeout=TIMEOUT,
        )
    )
    wheels = sorted(outdir.glob("mezite-*.whl"))
    assert len(wheels) == 1, f"expected one mezite wheel in {outdir}, found {wheels}"

    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    venv = root / "venv"
    _check(_run([sys.executable, "-m", "venv", venv], cwd=elsewhere, timeout=TIMEOUT))
    _check(
        _run(
            [venv / "bin" / "python", "-m", "pip", "install", "--no-input", wheels[0]],
            cwd=elsewhere,
            timeout=TIMEOUT,
        )
    )
    return Installed(wheel=wheels[0], venv=venv, elsewhere=elsewhere)


@pytest.mark.parametrize("path", PROTO_FILES)
def test_wheel_contains_proto_files(installed: Installed, path: str) -> None:
    with zipfile.ZipFile(installed.wheel) as whl:
        names = set(whl.namelist())
    assert path in names, f"{path} missing from {installed.wheel.name}"


def test_wheel_carries_the_whole_web_ui(installed: Installed) -> None:
    """Every file of the web UI in the tree is in the wheel (the vendored xterm.js and its
    licence included), and the installed proxy serves its app from there."""
    web = REPO_ROOT / "server" / "proxy" / "web"
    wanted = {
        f"server/proxy/web/{p.relative_to(web).as_posix()}"
        for p in web.rglob("*")
        if p.is_file() and p.name != "README.md"
    }
    assert "server/proxy/web/static/vendor/xterm/xterm.js" in wanted
    assert "server/proxy/web/static/vendor/xterm/LICENSE-xterm" in wanted
    with zipfile.ZipFile(installed.wheel) as whl:
        names = set(whl.namelist())
    assert wanted <= names, sorted(wanted - names)
    probe = (
        "from server.proxy.pages import page_routes; "
        "from importlib import resources; "
        "print(len(page_routes()), "
        "(resources.files('server.proxy') / 'web/static/vendor/xterm/xterm.js').is_file())"
    )
    result = _check(_run([installed.venv / "bin" / "python", "-c", probe], cwd=installed.elsewhere))
    assert result.stdout.split() == ["4", "True"]


@pytest.mark.parametrize("prog", PROGRAMS)
def test_entry_point_version(installed: Installed, prog: str) -> None:
    result = _check(_run([installed.bin / prog, "--version"], cwd=installed.elsewhere))
    assert result.stdout.strip() == f"{prog} {proto.__version__}"


@pytest.mark.parametrize("prog", PROGRAMS)
def test_entry_point_help(installed: Installed, prog: str) -> None:
    result = _check(_run([installed.bin / prog, "--help"], cwd=installed.elsewhere))
    assert prog in result.stdout
    assert "--version" in result.stdout


def test_generated_code_imports_from_install(installed: Installed) -> None:
    code = (
        "import pathlib, proto, proto.v1.auth_pb2, proto.v1.auth_grpc; "
        "print(pathlib.Path(proto.__file__).resolve().parent)"
    )
    result = _check(_run([installed.bin / "python", "-c", code], cwd=installed.elsewhere))
    pkg = Path(result.stdout.strip().splitlines()[-1])
    # The import must come from the fresh venv, not from the checkout.
    assert pkg.is_relative_to(installed.venv.resolve()), f"proto imported from {pkg}"
    assert not pkg.is_relative_to(REPO_ROOT), f"proto imported from the checkout: {pkg}"
    for path in PROTO_FILES:
        rel = Path(path).relative_to("proto")
        assert (pkg / rel).is_file(), f"{path} not installed under {pkg}"
