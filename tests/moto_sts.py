"""moto's server as the AWS STS peer of the IAM join's tests: a real HTTP server on
127.0.0.1 that checks SigV4 signatures, once told to (``POST /moto-api/reset-auth``).

Before authentication is switched on, an IAM user ``node1`` with an access key, a role
``mezd-nodes`` and an AssumeRole session ``i-0abc`` of it (as an EC2 instance role would
give) are made; after it, only those credentials sign requests moto accepts. Nothing
here reaches a real AWS host: botocore is pointed at moto, with no config files, and
never at the instance metadata address."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ACCOUNT = "123456789012"  # moto's account
REGION = "us-east-1"
# What a test process's botocore may see: no files, no metadata service.
AWS_ISOLATION = {
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}
_ALLOW_ALL = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)


@dataclass(frozen=True)
class AWSCredentials:
    access_key: str
    secret_key: str
    session_token: str = ""

    def env(self) -> dict[str, str]:
        env = {**AWS_ISOLATION, "AWS_ACCESS_KEY_ID": self.access_key,
               "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": REGION}  # fmt: skip
        if self.session_token:
            env["AWS_SESSION_TOKEN"] = self.session_token
        return env


@dataclass(frozen=True)
class MotoSTS:
    url: str
    user: AWSCredentials  # arn:aws:iam::ACCOUNT:user/node1
    role_session: AWSCredentials  # arn:aws:sts::ACCOUNT:assumed-role/mezd-nodes/i-0abc

    @property
    def user_arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:user/node1"

    @property
    def role_arn(self) -> str:
        return f"arn:aws:sts::{ACCOUNT}:assumed-role/mezd-nodes/i-0abc"


def _client(service: str, url: str, creds: AWSCredentials) -> object:
    import botocore.session

    session = botocore.session.Session()
    for variable in ("config_file", "credentials_file"):  # never the developer's ~/.aws
        session.set_config_variable(variable, "/dev/null")
    return session.create_client(
        service, region_name=REGION, endpoint_url=url, aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key, aws_session_token=creds.session_token or None,
    )  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_sts(log_dir: Path) -> Iterator[MotoSTS]:
    port = _free_port()
    log = (log_dir / "moto.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**AWS_ISOLATION, "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "moto did not start"
                time.sleep(0.1)
        yield _provision(url)
    finally:
        proc.kill()
        proc.wait(10)
        log.close()


def _provision(url: str) -> MotoSTS:
    anyone = AWSCredentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    iam: object = _client("iam", url, anyone)
    iam.create_user(UserName="node1")  # type: ignore[attr-defined]
    iam.put_user_policy(UserName="node1", PolicyName="all", PolicyDocument=_ALLOW_ALL)  # type: ignore[attr-defined]
    key = iam.create_access_key(UserName="node1")["AccessKey"]  # type: ignore[attr-defined]
    user = AWSCredentials(key["AccessKeyId"], key["SecretAccessKey"])
    trust = json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
        "Action": "sts:AssumeRole"}]})  # fmt: skip
    role = iam.create_role(RoleName="mezd-nodes", AssumeRolePolicyDocument=trust)["Role"]  # type: ignore[attr-defined]
    iam.put_role_policy(RoleName="mezd-nodes", PolicyName="all", PolicyDocument=_ALLOW_ALL)  # type: ignore[attr-defined]
    sts: object = _client("sts", url, user)
    assumed = sts.assume_role(RoleArn=role["Arn"], RoleSessionName="i-0abc")["Credentials"]  # type: ignore[attr-defined]
    session = AWSCredentials(
        assumed["AccessKeyId"], assumed["SecretAccessKey"], assumed["SessionToken"]
    )
    # Body "0": authentication from the next request on (a form content type empties
    # the body, and moto answers 500).
    reply = httpx.post(f"{url}/moto-api/reset-auth", content=b"0",
                       headers={"Content-Type": "text/plain"}, timeout=10)  # fmt: skip
    assert reply.status_code == 200, reply.text
    return MotoSTS(url=url, user=user, role_session=session)
