"""How mezctl reaches the auth service as an administrator.

On the auth server's host: the local admin identity that ``mezctl start`` writes into the
data dir (``admin/``), and the address in ``auth.json``. An explicit ``--auth-server``
overrides the address. Elsewhere (no admin identity in the data dir): the session of the
user logged in with `mez login`, whose roles must include admin."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from proto.errors import ConnectionProblem, MeziteError, NotAuthenticated
from proto.files import check_private_file

if TYPE_CHECKING:
    from proto.client import AuthClient


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


def profile_client() -> AuthClient | None:
    """Away from the auth host: the logged-in `mez` user's session (admin-only calls then
    need the admin role, which auth checks)."""
    from proto.client import AuthClient, ClientIdentity
    from proto.profile import load_profile, load_session

    try:
        profile = load_profile()
    except MeziteError:
        return None
    return AuthClient(
        profile.auth_addr,
        profile.ca_path.read_bytes(),
        ClientIdentity(session_id=load_session(profile)),
    )


def admin_client(data_dir: Path, auth_server: str | None = None) -> AuthClient:
    """The local admin identity on the auth host; elsewhere, the `mez` login."""
    from proto.client import AuthClient, ClientIdentity

    if not (data_dir / "admin").exists() and auth_server is None:
        client = profile_client()
        if client is not None:
            return client
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
    from proto.trust import certificate_agent_id

    # A new id at every start of the auth service: it is the one the certificate names.
    identity = ClientIdentity(agent_id=certificate_agent_id(cert), cert_pem=cert, key_pem=key)
    return AuthClient(addr, ca, identity)
