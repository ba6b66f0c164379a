"""`mezctl start` and `mezctl status` as an operator runs them."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.e2e.procs import cli, mezctl_start

pytestmark = pytest.mark.e2e


def _status(data_dir: Path) -> dict[str, object]:
    done = cli("mezctl", "status", "--data-dir", str(data_dir), "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_start_status_restart_keeps_the_pin(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with mezctl_start(data) as auth:
        first = _status(data)
        text = cli("mezctl", "status", "--data-dir", str(data))
        assert text.returncode == 0
        assert f"CA pin:       {first['ca_pin']}" in text.stdout
        assert "Cluster:      e2e" in text.stdout
        assert auth.stop(signal.SIGTERM) == 0
    assert "shutting down" in auth.log.read_text()
    assert not (data / "auth.json").exists()
    with mezctl_start(data) as auth:
        second = _status(data)
        assert auth.stop(signal.SIGINT) == 0
    assert first["ca_pin"] == second["ca_pin"]
    assert first["authorities"] == second["authorities"]
    assert str(first["ca_pin"]).startswith("sha256:") and len(str(first["ca_pin"])) == 71
    log = auth.log.read_text()
    assert "BEGIN" not in log and "PRIVATE" not in log


def _logged_in_elsewhere() -> None:
    """A `mez login` profile in this test's own HOME, pointing at no server."""
    from proto.profile import Profile

    profile = Profile(cluster="other", user="op", auth_addr="127.0.0.1:9", ca_pin="sha256:00")
    profile.save()
    profile.ca_path.write_text("not a CA\n")


def test_status_without_a_running_server_says_so(tmp_path: Path) -> None:
    done = cli("mezctl", "status", "--data-dir", str(tmp_path / "none"))
    assert done.returncode == 9
    assert "not running" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("before", [False, True])
def test_status_with_a_missing_data_dir_says_so_in_one_line(tmp_path: Path, before: bool) -> None:
    """Even with a login to fall back to: a named data dir that is missing is a typo."""
    _logged_in_elsewhere()
    missing = ["--data-dir", str(tmp_path / "typo")]
    args = [*missing, "status"] if before else ["status", *missing]
    done = cli("mezctl", *args)
    assert done.returncode == 9
    assert (
        done.stderr == f"error: data dir {tmp_path / 'typo'} does not exist, so the auth "
        "service is not running with it\n"
    )


def test_unknown_config_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "mezite.toml"
    config.write_text('[auth]\nlisten_adr = "127.0.0.1:0"\n')
    done = cli("mezctl", "start", "--config", str(config), "--data-dir", str(tmp_path / "d"))
    assert done.returncode == 2
    assert str(config) in done.stderr and "auth.listen_adr" in done.stderr
    assert "auth.listen_addr" in done.stderr  # the hint
    assert not (tmp_path / "d").exists()


def test_env_config_applies(tmp_path: Path) -> None:
    done = cli(
        "mezctl", "start", "--data-dir", str(tmp_path / "d"),
        env={"MEZITE_AUTH_SESSION_TTL": "forever"},
    )  # fmt: skip
    assert done.returncode == 2
    assert "MEZITE_AUTH_SESSION_TTL" in done.stderr


@pytest.mark.parametrize("flag", ["--listen", "--web-listen", "--proxy-ssh-listen"])
def test_a_busy_port_is_a_clear_error(tmp_path: Path, flag: str) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        listen = {f: "127.0.0.1:0" for f in ("--listen", "--web-listen", "--proxy-ssh-listen")}
        listen[flag] = f"127.0.0.1:{port}"
        args = [arg for pair in listen.items() for arg in pair]
        done = cli("mezctl", "start", "--data-dir", str(tmp_path / "d"), *args)
    assert done.returncode == 9
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "d" / "auth.json").exists()
