"""How mezctl reaches the auth service as an administrator.

On the auth server's host: the local admin identity that ``mezctl start`` writes into the
data dir (``admin/``), and the address in ``auth.json``. An explicit ``--auth-server``
overrides the address."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from proto.errors import ConnectionProblem, NotAuthenticated
from proto.files import check_private_file

if TYPE_CHECKING:
    from proto.client import AuthClient

LOCAL_ADMIN_ID = "local-admin"


def resolve_data_dir(data_dir: Path | None, config: Path | None) -> Path:
    """The data dir as `mezctl start` would resolve it (flag, env, file, default)."""
    from server.config import config_file_from_env, resolve_config

    cfg = resolve_config(
        config_file=config or config_file_from_env(os.environ),
        env=os.environ,
        flags={"data_dir": data_dir},
    )
    return cfg.data_dir


def auth_address(data_dir: Path, override: str | None) -> str:
    if override:
        return override
    runtime = data_dir / "auth.json"
    try:
        return str(json.loads(runtime.read_text())["addr"])
    except FileNotFoundError:
        raise ConnectionProblem(
            f"the auth service is not running with data dir {data_dir}",
            hint="start it with `mezctl start`, or pass --data-dir / --auth-server",
        ) from None


def admin_client(data_dir: Path, auth_server: str | None = None) -> AuthClient:
    from proto.client import AuthClient, ClientIdentity

    addr = auth_address(data_dir, auth_server)
    admin = data_dir / "admin"
    try:
        key = check_private_file(admin / "key.pem").read_bytes()
        cert = (admin / "cert.pem").read_bytes()
        ca = (admin / "ca.pem").read_bytes()
    except FileNotFoundError:
        raise NotAuthenticated(
            f"no local admin identity in {admin}",
            hint="run mezctl on the auth server's host as the user that runs `mezctl start`, "
            "or pass --data-dir",
        ) from None
    except PermissionError:
        raise NotAuthenticated(
            f"cannot read the local admin identity in {admin}",
            hint="run mezctl as the user that runs `mezctl start`",
        ) from None
    identity = ClientIdentity(agent_id=LOCAL_ADMIN_ID, cert_pem=cert, key_pem=key)
    return AuthClient(addr, ca, identity)
