"""`mezctl nodes ls|rm` and `mezctl proxies ls` against real processes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e.procs import cli, free_port, join_node, mezctl_start, mezd_start

pytestmark = pytest.mark.e2e


def listed(data_dir: Path, kind: str) -> list[dict[str, object]]:
    done = cli("mezctl", kind, "ls", "--format", "json", "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def test_an_admin_lists_and_removes_a_node(tmp_path: Path) -> None:
    with mezctl_start(tmp_path / "auth") as auth:
        port = free_port()
        join_node(auth, tmp_path / "node", "web-1", port)
        with mezd_start(tmp_path / "node", port) as node:
            deadline = time.monotonic() + 10
            while not (rows := listed(auth.data_dir, "nodes"))[0]["online"]:
                assert time.monotonic() < deadline, rows
                time.sleep(0.2)
            assert rows[0]["name"] == "web-1" and rows[0]["addrs"] == [f"127.0.0.1:{port}"]
            assert listed(auth.data_dir, "proxies") == []  # the in-process proxy is not one
            done = cli("mezctl", "nodes", "rm", "web-1", "--data-dir", str(auth.data_dir))
            assert done.returncode == 0, done.stderr
            assert "Removed node web-1" in done.stdout
            assert listed(auth.data_dir, "nodes") == []
            again = cli("mezctl", "nodes", "rm", "web-1", "--data-dir", str(auth.data_dir))
            assert again.returncode != 0 and "no node 'web-1'" in again.stderr
            deadline = time.monotonic() + 10
            # Its open heartbeat stream ends, and reconnecting is refused.
            while "mismatched agent identity" not in node.log.read_text():
                assert time.monotonic() < deadline, node.log.read_text()[-2000:]
                time.sleep(0.2)
