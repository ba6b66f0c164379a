"""The proxy in a process of its own: `mezctl start --roles auth` on one side, the line
`mezctl tokens add --type proxy` prints on the other, then a user logs in and runs
`mez ssh` through the lone proxy to a node."""

from __future__ import annotations

import getpass
import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.procs import (
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
LOGIN = getpass.getuser()


def _proxy_token(auth: AuthProcess) -> list[str]:
    made = cli(
        "mezctl", "tokens", "add", "--type", "proxy", "--format", "json",
        "--data-dir", str(auth.data_dir),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    line = json.loads(made.stdout)["join"].split()
    assert line[:4] == ["mezctl", "start", "--roles", "proxy"], line
    return line[4:]


def _tokens(auth: AuthProcess) -> list[str]:
    done = cli("mezctl", "tokens", "ls", "--format", "json", "--data-dir", str(auth.data_dir))
    assert done.returncode == 0, done.stderr
    return [t["name"] for t in json.loads(done.stdout)]


def _audit(auth: AuthProcess, kind: str) -> list[dict[str, object]]:
    done = cli(
        "mezctl", "audit", "events", "--type", kind, "--format", "json",
        "--data-dir", str(auth.data_dir),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def _arg(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def test_a_lone_proxy_joins_and_routes_mez_ssh(tmp_path: Path) -> None:
    with mezctl_start(tmp_path / "auth", roles="auth") as auth:
        assert not (auth.data_dir / "proxy.json").exists()  # no proxy in the auth process
        join_args = _proxy_token(auth)
        token_name = _arg(join_args, "--token").split(".")[0]

        # A wrong pin: refused before the token is sent, so the token still works.
        wrong = list(join_args)
        wrong[wrong.index("--ca-pin") + 1] = "sha256:" + "0" * 64
        refused = cli(
            "mezctl", "start", "--roles", "proxy", *wrong,
            "--data-dir", str(tmp_path / "wrong"), "--web-listen", "127.0.0.1:0",
            "--proxy-ssh-listen", "127.0.0.1:0",
        )  # fmt: skip
        assert refused.returncode != 0
        assert "pin" in refused.stderr.lower(), refused.stderr
        assert token_name in _tokens(auth)

        port = free_port()
        join_node(auth, tmp_path / "node", "web-1", port)
        done = cli(
            "mezctl", "users", "add", "alice", "--roles", "access", "--logins", LOGIN,
            "--password-stdin", "--data-dir", str(auth.data_dir), stdin=PASSWORD + "\n",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        with (
            mezd_start(tmp_path / "node", port),
            mezctl_start(tmp_path / "proxy", *join_args, "--name", "edge-1", roles="proxy") as px,
        ):
            assert token_name not in _tokens(auth)  # spent by the join
            env = mez_env(tmp_path / "alice")
            login = cli(
                "mez", "login", "--proxy", px.web_addr, "--user", "alice", "--password-stdin",
                "--ca-pin", cluster_pin(auth.data_dir), stdin=PASSWORD + "\n", env=env,
            )  # fmt: skip
            assert login.returncode == 0, login.stderr
            deadline = time.monotonic() + 15  # the proxy refreshes its node table
            while True:
                ssh = cli("mez", "ssh", "web-1", "id", "-un", stdin="", env=env)
                if ssh.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert ssh.returncode == 0, ssh.stderr
            assert ssh.stdout.strip() == LOGIN
            config = (Path(env["MEZITE_HOME"]) / "e2e" / "ssh_config").read_text()
            assert px.proxy_ssh_addr.rsplit(":", 1)[1] in config  # the hop is the lone proxy

            # mez needs only the proxy: with auth's address made unreachable in the
            # profile, status, ls, a certificate reissue, ssh and logout all still work.
            profile_file = Path(env["MEZITE_HOME"]) / "e2e" / "profile.json"
            profile = json.loads(profile_file.read_text())
            assert profile["web_addr"] == px.web_addr
            profile_file.write_text(json.dumps({**profile, "auth_addr": "127.0.0.1:9"}))
            assert "via proxy" in cli("mez", "status", env=env).stdout
            assert "web-1" in cli("mez", "ls", env=env).stdout
            (Path(env["MEZITE_HOME"]) / "e2e" / "key-cert.pub").unlink()  # forces a reissue
            ssh = cli("mez", "ssh", "web-1", "true", stdin="", env=env)
            assert ssh.returncode == 0, ssh.stderr
            bad = cli(
                "mez", "login", "--proxy", px.web_addr, "--user", "alice", "--password-stdin",
                stdin="wrong password\n", env=env,
            )  # fmt: skip
            assert bad.returncode == 3, bad.stderr
            assert "invalid username or password" in bad.stderr.lower(), bad.stderr
            pinned_wrong = cli(
                "mez", "login", "--proxy", px.web_addr, "--user", "alice", "--password-stdin",
                "--ca-pin", "sha256:" + "0" * 64, stdin=PASSWORD + "\n",
                env=mez_env(tmp_path / "mallory"),
            )  # fmt: skip
            assert pinned_wrong.returncode != 0
            assert "pin" in pinned_wrong.stderr.lower(), pinned_wrong.stderr
            out = cli("mez", "logout", env=env)
            assert out.returncode == 0, out.stderr
            assert cli("mez", "ls", env=env).returncode == 3  # the session is gone

            # curl trusts the cluster CA alone and checks the name 127.0.0.1.
            ca = tmp_path / "ca.pem"
            ca.write_bytes((auth.data_dir / "admin" / "ca.pem").read_bytes())
            ping = subprocess.run(
                ["curl", "-sS", "--cacert", str(ca), f"https://{px.web_addr}/v1/webapi/ping"],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            assert ping.returncode == 0, ping.stderr
            assert json.loads(ping.stdout)["cluster_name"] == "e2e"

            (joined,) = [e for e in _audit(auth, "join") if e["fields"]["kind"] == "proxy"]
            proxy_id = joined["user"]
            deadline = time.monotonic() + 10  # the proxy forwards its events in batches
            while not (routes := _audit(auth, "proxy.route")) and time.monotonic() < deadline:
                time.sleep(0.3)
            assert any(
                r["user"] == "alice" and r["success"] and r["fields"]["proxy_id"] == proxy_id
                for r in routes
            ), routes
        assert px.proc.returncode == 0

        # A restart needs neither token nor pin; the spent token is not needed again.
        # Its certificate names localhost too, since it listens on loopback.
        with mezctl_start(tmp_path / "proxy", "--auth-server", auth.addr, roles="proxy") as again:
            port = again.web_addr.rsplit(":", 1)[1]
            ping = subprocess.run(
                ["curl", "-sS", "--cacert", str(ca), f"https://localhost:{port}/v1/webapi/ping"],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip
            assert ping.returncode == 0, ping.stderr

        # The spent token joins nothing else.
        reuse = cli(
            "mezctl", "start", "--roles", "proxy", *join_args,
            "--data-dir", str(tmp_path / "second"), "--web-listen", "127.0.0.1:0",
            "--proxy-ssh-listen", "127.0.0.1:0",
        )  # fmt: skip
        assert reuse.returncode == 3, reuse.stderr
        assert "join token" in reuse.stderr and "--type proxy" in reuse.stderr


def test_a_proxy_token_does_not_join_a_node(tmp_path: Path) -> None:
    with mezctl_start(tmp_path / "auth", roles="auth") as auth:
        join_args = _proxy_token(auth)
        done = cli(
            "mezd", "join", *join_args, "--name", "web-1", "--data-dir", str(tmp_path / "node")
        )
        assert done.returncode == 3, done.stderr
        assert "--type node" in done.stderr
        assert _arg(join_args, "--token").split(".")[0] in _tokens(auth)
        assert not (tmp_path / "node" / "identity.json").exists()
