"""The mez profile in ~/.mezite is refused, as OpenSSH's StrictModes would refuse it, when
another user could have put a file there or changed one: a symbolic link, a file that is
group- or world-writable, a key or cluster directory others can read. One line names the
file; nothing is used."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from proto.errors import AccessDenied
from proto.files import write_private
from proto.profile import Profile, load_profile

BIN = Path(sys.executable).parent


@pytest.fixture
def profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Profile:
    monkeypatch.setenv("MEZITE_HOME", str(tmp_path / "home" / ".mezite"))
    saved = Profile(cluster="prod", user="dev", auth_addr="127.0.0.1:9", ca_pin="sha256:00")
    saved.save()
    write_private(saved.key_path, "private key\n")
    for path in (saved.cert_path, saved.known_hosts_path, saved.ca_path):
        write_private(path, "public\n", mode=0o644)
    return saved


def _symlink(path: Path) -> None:
    """Put the file elsewhere, as another user might, and link to it."""
    elsewhere = path.parent.parent / f"elsewhere-{path.name}"
    os.replace(path, elsewhere)
    path.symlink_to(elsewhere, target_is_directory=elsewhere.is_dir())


def _chmod(mode: int) -> Callable[[Path], None]:
    return lambda path: path.chmod(mode)


FILES: dict[str, Callable[[Profile], Path]] = {
    "key": lambda p: p.key_path,
    "cert": lambda p: p.cert_path,
    "known_hosts": lambda p: p.known_hosts_path,
    "ca": lambda p: p.ca_path,
    "profile.json": lambda p: p.profile_path,
    "current": lambda p: p.dir.parent / "current",
    "cluster dir": lambda p: p.dir,
}
HOME = {"home": lambda p: p.dir.parent}  # a link to it is followed: see below

CASES = [
    *[(name, "symbolic link", _symlink) for name in FILES],
    *[
        (name, "writable by other users", _chmod(0o664))
        for name in FILES
        if name not in ("key", "cluster dir")
    ],
    ("home", "writable by other users", _chmod(0o770)),
    *[(name, "writable by other users", _chmod(0o646)) for name in ("cert", "ca", "current")],
    ("key", "accessible by other users", _chmod(0o640)),
    ("key", "accessible by other users", _chmod(0o604)),
    ("cluster dir", "accessible by other users", _chmod(0o750)),
    ("cluster dir", "accessible by other users", _chmod(0o777)),
]


def test_a_sound_profile_loads(profile: Profile) -> None:
    assert load_profile() == profile
    assert load_profile("prod") == profile


@pytest.mark.parametrize(
    ("name", "why", "spoil"), CASES, ids=[f"{n}-{w}-{i}" for i, (n, w, _) in enumerate(CASES)]
)
def test_a_spoiled_profile_is_refused_naming_the_file(
    profile: Profile, name: str, why: str, spoil: Callable[[Path], None]
) -> None:
    path = {**FILES, **HOME}[name](profile)
    spoil(path)
    with pytest.raises(AccessDenied) as info:
        load_profile()
    assert info.value.message.startswith(f"{path} is "), info.value.message
    assert why in info.value.message
    assert "\n" not in info.value.message


def test_a_linked_home_is_followed_but_what_it_leads_to_is_checked(
    profile: Profile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = tmp_path / "linked-home"
    link.symlink_to(profile.dir.parent, target_is_directory=True)
    monkeypatch.setenv("MEZITE_HOME", str(link))
    assert load_profile().cluster == "prod"
    profile.dir.parent.chmod(0o777)
    with pytest.raises(AccessDenied, match="writable by other users"):
        load_profile()


def test_mez_says_so_in_one_line(profile: Profile) -> None:
    _symlink(profile.key_path)
    env = {**os.environ, "MEZITE_HOME": str(profile.dir.parent)}
    done = subprocess.run(
        [str(BIN / "mez"), "status"], capture_output=True, text=True, env=env, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert errors == [f"error: {profile.key_path} is a symbolic link; refusing to use it"], (
        done.stderr
    )
