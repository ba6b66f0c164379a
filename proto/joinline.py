"""The command lines an admin hands on: the one that joins a node or a proxy with a
token, and the ones that accept a user's invite. One renderer for mezctl, which prints
them, and the proxy's admin API, which the web UI shows."""

from __future__ import annotations

import shlex
from urllib.parse import quote


def auth_flags(auth_addr: str, ca_pin: str) -> str:
    return f"--auth-server {shlex.quote(auth_addr)} --ca-pin {shlex.quote(ca_pin)}"


def join_command(
    kind: str, token: str, auth_addr: str, ca_pin: str, *, join_method: str = "token"
) -> str:
    """``mezd join`` for a node, `mezctl start --roles proxy` for a proxy host."""
    method = " --join-method iam" if join_method == "iam" else ""
    run = "mezctl start --roles proxy" if kind == "proxy" else "mezd join"
    return f"{run}{method} --token {shlex.quote(token)} {auth_flags(auth_addr, ca_pin)}"


def set_password_command(token: str, auth_addr: str, ca_pin: str) -> str:
    return f"mez set-password --token {shlex.quote(token)} {auth_flags(auth_addr, ca_pin)}"


def invite_url(web_origin: str, token: str) -> str:
    """The web UI's invite page; the token rides in the fragment, which browsers never
    send to a server (so it stays out of access logs and Referer headers)."""
    return f"{web_origin}/web/#/invite/{quote(token, safe='')}"
