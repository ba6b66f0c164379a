"""Tests never see the developer's own ~/.mezite, keyring, data or log dirs.

A nested pytest runs with a HOME that holds a logged-in ~/.mezite, as a developer's does:
with tests/conftest.py its test sees none of it; without, the same test fails (so the check
can fail, and the fixture is what makes it pass)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

INNER = """
import os
from pathlib import Path

import platformdirs
import pytest

from proto.errors import NotAuthenticated
from proto.profile import load_profile

REAL = Path(os.environ["REAL_HOME_FOR_TEST"])


def test_sees_no_real_home() -> None:
    assert not Path.home().is_relative_to(REAL)
    assert not Path(os.path.expanduser("~")).is_relative_to(REAL)
    for where in (platformdirs.user_data_dir("mezite"), platformdirs.user_log_dir("mezite"),
                  platformdirs.user_config_dir("mezite"), platformdirs.user_cache_dir("mezite")):
        assert not Path(where).is_relative_to(REAL), where
    with pytest.raises(NotAuthenticated):
        load_profile()
"""


def _real_home(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME as a developer has it: logged in to a cluster, data under ~/.local."""
    from proto.profile import Profile

    home = root / "real-home"
    (home / ".local" / "share" / "mezite").mkdir(parents=True)
    with monkeypatch.context() as env:
        env.setenv("MEZITE_HOME", str(home / ".mezite"))
        Profile(cluster="prod", user="dev", auth_addr="127.0.0.1:9", ca_pin="sha256:00").save()
    return home


@pytest.mark.parametrize("isolated", [True, False])
def test_a_test_cannot_see_the_real_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: bool
) -> None:
    home = _real_home(tmp_path, monkeypatch)
    assert (home / ".mezite" / "current").exists()
    (tmp_path / "inner").mkdir()
    (tmp_path / "inner" / "test_inner.py").write_text(INNER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(HOME=str(home), REAL_HOME_FOR_TEST=str(home), PYTHONPATH=str(REPO_ROOT))
    plugin = ["-p", "tests.conftest"] if isolated else []
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin,
         str(tmp_path / "inner")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if isolated:
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 passed" in done.stdout
    else:
        assert done.returncode == 1, done.stdout + done.stderr
        assert "1 failed" in done.stdout
