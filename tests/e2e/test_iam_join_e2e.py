"""The IAM join with real processes: moto's server as STS (authentication on), `mezctl
start` sending signed requests there (MEZITE_AUTH_STS_ENDPOINT_OVERRIDE; the signature
stays for sts.us-east-1.amazonaws.com), `mezctl tokens add --join-method iam`, `mezd join
--join-method iam` with an instance role's session credentials in its environment, `mezd
start`, and a user's `mez ls` and `mez ssh` to the node."""

from __future__ import annotations

import getpass
import json
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.e2e.procs import cli, cluster_pin, free_port, mez_env, mezctl_start, mezd_start
from tests.moto_sts import ACCOUNT, AWS_ISOLATION, moto_sts

pytestmark = pytest.mark.e2e

PASSWORD = "a long enough password"


def test_a_node_joins_by_its_aws_identity_and_is_reachable(tmp_path: Path) -> None:
    with ExitStack() as stack:
        moto = stack.enter_context(moto_sts(tmp_path))
        data = tmp_path / "auth"
        env = {"MEZITE_AUTH_STS_ENDPOINT_OVERRIDE": moto.url}
        auth = stack.enter_context(mezctl_start(data, env=env))
        admin = ["--data-dir", str(data)]
        made = cli("mezctl", "tokens", "add", "--join-method", "iam", "--name", "aws-prod",
                   "--allow", f"account={ACCOUNT},arn=arn:aws:sts::{ACCOUNT}:assumed-role/"
                   "mezd-nodes/*", "--labels", "cloud=aws", "--format", "json", *admin)  # fmt: skip
        assert made.returncode == 0, made.stderr
        line = json.loads(made.stdout)["join"].split()
        assert line[:4] == ["mezd", "join", "--join-method", "iam"]
        listed = cli("mezctl", "tokens", "ls", "--format", "json", *admin)
        (rule,) = json.loads(listed.stdout)
        assert (rule["join_method"], rule["expires"]) == ("iam", 0)

        node_dir, port = tmp_path / "node", free_port()
        role = moto.role_session.env()
        # Without credentials: one line that says so, before anything is sent.
        bare = cli("mezd", *line[1:], "--name", "i-0abc", "--data-dir", str(node_dir),
                   env={**AWS_ISOLATION, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "",
                        "AWS_SECRET_ACCESS_KEY": ""})  # fmt: skip
        assert bare.returncode != 0 and "no AWS credentials" in bare.stderr, bare.stderr
        assert "Traceback" not in bare.stderr
        joined = cli("mezd", *line[1:], "--name", "i-0abc", "--advertise-addr",
                     f"127.0.0.1:{port}", "--data-dir", str(node_dir), env=role)  # fmt: skip
        assert joined.returncode == 0, joined.stderr
        stack.enter_context(mezd_start(node_dir, port))

        user = mez_env(tmp_path / "user")
        add = cli("mezctl", "users", "add", "alice", "--roles", "access", "--logins",
                  getpass.getuser(), "--password-stdin", *admin, stdin=PASSWORD + "\n")  # fmt: skip
        assert add.returncode == 0, add.stderr
        login = cli("mez", "login", "--auth", auth.addr, "--user", "alice", "--password-stdin",
                    "--ca-pin", cluster_pin(data), stdin=PASSWORD + "\n", env=user)  # fmt: skip
        assert login.returncode == 0, login.stderr
        deadline = time.monotonic() + 20
        while True:
            ls = cli("mez", "ls", "--format", "json", env=user)
            found = [n for n in json.loads(ls.stdout or "[]") if n["name"] == "i-0abc"]
            if found:
                break
            assert time.monotonic() < deadline, ls.stderr
            time.sleep(0.2)
        assert found[0]["labels"] == {"cloud": "aws"}
        ran = cli("mez", "ssh", "i-0abc", "--", "echo", "joined-by-iam", env=user)
        assert (ran.returncode, ran.stdout.strip()) == (0, "joined-by-iam"), ran.stderr

        audit = cli("mezctl", "audit", "events", "--type", "join", "--format", "json", *admin)
        (event,) = json.loads(audit.stdout)
        assert event["fields"]["aws_arn"] == moto.role_arn
