"""Fixtures shared by every kind of test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import PostgresServer, postgres_server

# Where client state, data dirs, logs and keyrings live: never the developer's own.
OWN_DIRS = {
    "HOME": "home",
    "XDG_CONFIG_HOME": "config",
    "XDG_DATA_HOME": "data",
    "XDG_STATE_HOME": "state",
    "XDG_CACHE_HOME": "cache",
    "XDG_RUNTIME_DIR": "runtime",
}


def _own_home(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Point HOME and the XDG dirs under ``root``; drop the caller's MEZITE_* settings and
    session bus (the road to the desktop's keyring). The keyring is whatever a test chooses
    (tests/e2e/procs.py's mez_env names a file keyring through PYTHON_KEYRING_BACKEND)."""
    monkeypatch.delenv("DBUS_SESSION_BUS_ADDRESS", raising=False)
    for var, name in OWN_DIRS.items():
        path = root / name
        path.mkdir(mode=0o700, exist_ok=True)
        monkeypatch.setenv(var, str(path))
    for var in [v for v in os.environ if v.startswith("MEZITE_")]:
        monkeypatch.delenv(var)


@pytest.fixture(autouse=True, scope="session")
def _session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """For fixtures wider than one test (servers per module or session)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        # pip's download cache is no user state; keeping it spares the packaging test a
        # cold cache (a full download of grpcio, cryptography...) on every run.
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        monkeypatch.setenv("PIP_CACHE_DIR", os.environ.get("PIP_CACHE_DIR", f"{cache}/pip"))
        _own_home(monkeypatch, tmp_path_factory.mktemp("session-home"))
        yield


@pytest.fixture(autouse=True)
def own_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own HOME and XDG dirs: no ~/.mezite, keyring file, data dir or
    log of the developer's is read or written, and tests do not see each other's."""
    root = tmp_path_factory.mktemp("home")
    _own_home(monkeypatch, root)
    return root / "home"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session; tests take a schema each."""
    with postgres_server() as server:
        yield server
