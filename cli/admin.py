"""How mezctl reaches the auth service as an administrator.

On the auth server's host: the local admin identity that ``mezctl start`` writes into the
data dir (``admin/``), and the address in ``auth.json``. An explicit ``--auth-server``
overrides the address. Elsewhere (no admin identity in the default data dir): the session
of the user logged in with `mez login`, whose roles must include admin. A data dir that
was named (flag, $MEZITE_DATA_DIR, config file) and does not exist is an error, never a
reason to act with the login's identity instead: it is a typo, not another host.

The options that say where auth is (``--data-dir``, ``--config``, ``--auth-server``) are
declared here once. mezctl's root callback takes them before the command, and
``admin_command`` lets every admin command take them after its name too, as scripts and
the README have always written them. Either way they end up in a ``Connection`` in the
click context, which makes a client only when a command asks for one.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from cli.common import joined
from proto.errors import ConnectionProblem, MeziteError, NotAuthenticated
from proto.files import check_private_file

if TYPE_CHECKING:
    from proto.client import AuthClient

R = TypeVar("R")

DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory of the auth service on this host."),
]
ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="TOML config file (or $MEZITE_CONFIG).")
]
AuthServerOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--auth-server",
        help="Auth service address (default: from the data dir); several as A,B or the flag "
        "repeated (tried in order).",
    ),
]


@dataclass(frozen=True)
class Connection:
    """Where the auth service is, as the options said; a client only on ``client()``, so
    --help, bad input and `mezctl start` never read a data dir or a keyring."""

    data_dir: Path | None = None
    config: Path | None = None
    auth_server: str | None = None

    def overridden(
        self, data_dir: Path | None, config: Path | None, auth_server: str | None
    ) -> Connection:
        """Options after the command's name win over the ones before it."""
        return Connection(
            data_dir or self.data_dir, config or self.config, auth_server or self.auth_server
        )

    def client(self) -> AuthClient:
        return admin_client(resolve_data_dir(self.data_dir, self.config), self.auth_server)


def connection(ctx: typer.Context) -> Connection:
    found = ctx.find_object(Connection)
    return found if found is not None else Connection()


def connect(ctx: typer.Context) -> AuthClient:
    """The admin client for this command's connection options."""
    return connection(ctx).client()


_CONNECTION_PARAMS = tuple(
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
    for name, kind in (("data_dir", DataDirOpt), ("config", ConfigOpt),
                       ("auth_server", AuthServerOpt))
)  # fmt: skip


def admin_command(func: Callable[..., R]) -> Callable[..., R]:
    """Give a command (which takes ``ctx: typer.Context``) the connection options: typer
    reads the extended signature, and the wrapper moves their values into the command's
    context before the command runs."""
    signature = inspect.signature(func, eval_str=True)
    if "ctx" not in signature.parameters:
        raise TypeError(f"{func.__name__} needs a `ctx: typer.Context` parameter")

    @functools.wraps(func)
    def command(*args: Any, **kwargs: Any) -> R:
        data_dir, config, auth_server = (kwargs.pop(p.name, None) for p in _CONNECTION_PARAMS)
        ctx = kwargs["ctx"]
        ctx.obj = connection(ctx).overridden(data_dir, config, joined(auth_server))
        return func(*args, **kwargs)

    params = [*signature.parameters.values(), *_CONNECTION_PARAMS]
    command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    return command


def resolve_data_dir(data_dir: Path | None, config: Path | None) -> Path:
    """The data dir as `mezctl start` would resolve it (flag, env, file, default); one
    that was named must exist."""
    from server.config import config_file_from_env, default_data_dir, resolve_config

    cfg = resolve_config(
        config_file=config or config_file_from_env(os.environ),
        env=os.environ,
        flags={"data_dir": data_dir},
    )
    if cfg.data_dir != default_data_dir() and not cfg.data_dir.exists():
        raise ConnectionProblem(
            f"data dir {cfg.data_dir} does not exist, so the auth service is not running with it"
        )
    return cfg.data_dir


def web_origin(ctx: typer.Context) -> str:
    """The web UI's origin, for the links mezctl prints: the proxy running with this
    data dir (``proxy.json``), else the proxy the `mez` login went through; "" when
    neither is known."""
    conn = connection(ctx)
    try:
        data_dir = resolve_data_dir(conn.data_dir, conn.config)
        return str(json.loads((data_dir / "proxy.json").read_text())["public_origin"])
    except (MeziteError, OSError, ValueError, KeyError, TypeError):
        pass
    from proto.profile import load_profile

    try:
        profile = load_profile()
    except MeziteError:
        return ""
    first = profile.web_addr.split(",")[0].strip()
    return f"https://{first}" if first else ""


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
