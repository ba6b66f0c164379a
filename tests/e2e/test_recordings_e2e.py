"""Session recording end to end, with real processes: `mez ssh -tt` runs a known script
on a real `mezd`; once it ends the recording reaches auth, `mez recordings ls` lists it,
`mezctl recordings export` writes a cast that Debian's `asciinema play` plays, and
`mez play` prints it. Faults: auth down when the session ends (the recording arrives
after auth is back), and mezd SIGKILLed in the middle of an upload (after a restart the
recording arrives whole, once)."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from proto.failpoint import ENV as FAILPOINT
from tests.e2e.procs import (
    BIN,
    AuthProcess,
    cli,
    cluster_pin,
    free_port,
    join_node,
    mez_env,
    mezctl_start,
    mezd_start,
)

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"
SCRIPT = "echo recorded-$((6 * 7)); printf 'caf\\303\\251\\n'"  # the text only its output has


def wait_for(what: str, check: Callable[[], Any], within: float = 30) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {within:.0f}s: {what}")


def recordings(env: dict[str, str]) -> list[dict[str, Any]]:
    done = cli("mez", "recordings", "ls", "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def listed(env: dict[str, str], count: int) -> Callable[[], list[dict[str, Any]] | None]:
    def check() -> list[dict[str, Any]] | None:
        found = recordings(env)
        return found if len(found) >= count else None

    return check


def export(auth: AuthProcess, sid: str) -> bytes:
    done = subprocess.run(
        [str(BIN / "mezctl"), "recordings", "export", sid, "--data-dir", str(auth.data_dir)],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def output_of(cast: bytes) -> str:
    lines = cast.decode().splitlines()
    assert json.loads(lines[0])["version"] == 2
    return "".join(e[2] for e in map(json.loads, lines[1:]) if e[1] == "o")


def spooled(node_dir: Path) -> list[str]:
    return sorted(p.name for p in (node_dir / "recordings").iterdir())


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[ExitStack, AuthProcess, int, dict[str, str]]]:
    data, port = tmp_path / "auth", free_port()
    env = mez_env(tmp_path / "user")
    with ExitStack() as stack:
        auth = stack.enter_context(mezctl_start(data, listen=f"127.0.0.1:{port}"))
        add = cli("mezctl", "users", "add", "alice", "--roles", "access",
                  "--logins", getpass.getuser(), "--password-stdin",
                  "--data-dir", str(data), stdin=PASSWORD + "\n")  # fmt: skip
        assert add.returncode == 0, add.stderr
        login = cli("mez", "login", "--auth", auth.addr, "--user", "alice", "--password-stdin",
                    "--ca-pin", cluster_pin(data), stdin=PASSWORD + "\n", env=env)  # fmt: skip
        assert login.returncode == 0, login.stderr
        yield stack, auth, port, env


def test_recorded_listed_exported_played(
    cluster: tuple[ExitStack, AuthProcess, int, dict[str, str]], tmp_path: Path
) -> None:
    stack, auth, _, env = cluster
    node_port = free_port()
    join_node(auth, tmp_path / "node", "web-1", node_port)
    stack.enter_context(mezd_start(tmp_path / "node", node_port))
    ran = cli("mez", "ssh", "-tt", "web-1", SCRIPT, env=env)
    assert ran.returncode == 0, ran.stderr
    assert "recorded-42" in ran.stdout
    (rec,) = wait_for("the recording listed", listed(env, 1))
    assert (rec["user"], rec["login"], rec["node"], rec["truncated"]) == (
        "alice", getpass.getuser(), "web-1", False,
    )  # fmt: skip
    sid = rec["session_id"]
    wait_for("the spool emptied", lambda: spooled(tmp_path / "node") == [])
    cast = export(auth, sid)
    assert "recorded-42\r\ncafé\r\n" in output_of(cast)
    (tmp_path / "s.cast").write_bytes(cast)
    asciinema = shutil.which("asciinema")
    if asciinema is not None:  # scripts/test.sh installs Debian's
        played = subprocess.run([asciinema, "play", "-s", "10", str(tmp_path / "s.cast")],
                                capture_output=True, stdin=subprocess.DEVNULL, timeout=60,
                                check=False)  # fmt: skip
        assert played.returncode == 0, played.stderr
        assert b"recorded-42" in played.stdout and "café".encode() in played.stdout
    played = cli("mez", "play", sid, "--speed", "10", env=env)
    assert played.returncode == 0, played.stderr
    assert "recorded-42" in played.stdout
    # The session's end is audited with the recording's name, and its arrival with its hash.
    audit = cli("mezctl", "audit", "events", "--type", "session.end", "--type",
                "session.recording", "--format", "json",
                "--data-dir", str(auth.data_dir))  # fmt: skip
    assert audit.returncode == 0, audit.stderr
    events = [e for e in json.loads(audit.stdout) if sid in json.dumps(e)]
    assert sorted(e["type"] for e in events) == ["session.end", "session.recording"], events
    end = next(e for e in events if e["type"] == "session.end")
    assert sid in json.dumps(end.get("fields", end)).replace(f'"session_id": "{sid}"', ""), end


def test_auth_down_at_the_end_and_mezd_killed_mid_upload(
    cluster: tuple[ExitStack, AuthProcess, int, dict[str, str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, auth, port, env = cluster
    node_dir, node_port = tmp_path / "node", free_port()
    join_node(auth, node_dir, "web-1", node_port)
    with mezd_start(node_dir, node_port) as node:
        # A session that outlives auth: auth stops while it sleeps.
        session = subprocess.Popen(
            [str(BIN / "mez"), "ssh", "-tt", "web-1", "sleep 3; echo after-$((40 + 2))"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, **env},
        )  # fmt: skip
        time.sleep(1.5)
        auth.stop()
        out, err = session.communicate(timeout=30)
        assert session.returncode == 0, err
        assert b"after-42" in out
        time.sleep(2)  # the uploader tries and fails meanwhile
        assert [n.rsplit(".", 1)[1] for n in spooled(node_dir)] == ["cast", "json"]
        with mezctl_start(auth.data_dir, listen=f"127.0.0.1:{port}") as auth:
            (rec,) = wait_for("the recording after auth's return", listed(env, 1), within=90)
            assert "after-42" in output_of(export(auth, rec["session_id"]))
            wait_for("the spool emptied", lambda: spooled(node_dir) == [])

            # Now a recording big enough for several chunks, and mezd killed after two.
            node.stop()
            monkeypatch.setenv(FAILPOINT, "recording.uploading")
            with mezd_start(node_dir, node_port) as node:
                ran = cli("mez", "ssh", "-tt", "web-1", "seq 1 300000", env=env, timeout=120)
                assert ran.returncode == 0, ran.stderr
                assert node.proc.wait(60) == -signal.SIGKILL
            monkeypatch.delenv(FAILPOINT)
            left = spooled(node_dir)
            assert len(left) == 2, left  # converted, partly uploaded, still spooled
            sid = left[0].split(".")[0]
            whole = (node_dir / "recordings" / f"{sid}.cast").stat().st_size
            partial = auth.data_dir / "recordings" / f"{sid}.cast"
            assert 0 < partial.stat().st_size < whole  # auth has the first chunks only
            with mezd_start(node_dir, node_port):
                found = wait_for("the killed upload resumed", listed(env, 2), within=60)
                wait_for("the spool emptied", lambda: spooled(node_dir) == [])
            big = next(r for r in found if r["session_id"] != rec["session_id"])
            text = output_of(export(auth, big["session_id"]))
            assert text == "".join(f"{i}\r\n" for i in range(1, 300001))  # no loss, no repeat
