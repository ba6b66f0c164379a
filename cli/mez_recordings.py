"""`mez recordings ls` and `mez play`: session recordings (asciicast v2) that auth keeps,
listed and played in this terminal. Admins and auditors see every recording; users
their own."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import command_group
from cli.render import FormatOpt, when

if TYPE_CHECKING:
    from proto.cluster_api import ClusterAPI

app = command_group(help="Session recordings: list them; `mez play ID` plays one.")
MAX_IDLE = 2.0  # a pause in a recording is played at most this long


def _api() -> ClusterAPI:
    from proto.cluster_api import connect
    from proto.errors import BadParameter
    from proto.profile import load_profile

    profile = load_profile()
    if profile.is_spiffe:
        raise BadParameter("recordings are for users; a SPIFFE login has no session")
    return connect(profile)


@app.command("ls")
def ls(
    user: Annotated[str, typer.Option("--user", help="Only this user's (admins, auditors).")] = "",
    node: Annotated[str, typer.Option("--node", help="Only this node's (name or id).")] = "",
    since: Annotated[str, typer.Option("--since", help="Only those of the last e.g. 1h.")] = "",
    output: FormatOpt = "text",
) -> None:
    """List the session recordings you may play, newest first."""
    from cli.render import show_rows
    from proto.resources import parse_duration

    start = time.time() - parse_duration(since, path="--since") if since else 0.0
    api = _api()
    try:
        found = api.list_recordings(user, node, start)
    finally:
        api.close()
    rows = [
        {
            "session_id": r.session_id,
            "user": r.user,
            "login": r.login,
            "node": r.node_name,
            "started": r.started,
            "duration": round(r.ended - r.started, 1),
            "size": r.size,
            "sha256": r.sha256,
            "truncated": r.truncated,
        }
        for r in found
    ]
    show_rows(
        rows,
        output,
        ["Session", "User", "Login", "Node", "Started", "Duration", "Size"],
        lambda r: [
            r["session_id"],
            r["user"],
            r["login"],
            r["node"],
            when(r["started"]),
            f"{r['duration']}s",
            r["size"],
        ],
    )


def play_cast(
    cast: bytes, speed: float, write: Callable[[str], None], sleep: Callable[[float], None]
) -> None:
    """Play asciicast v2 output events in order, pauses divided by ``speed`` (and cut at
    MAX_IDLE); other events (resizes, markers) are not the terminal's to replay."""
    from proto.errors import BadParameter

    lines = cast.decode("utf-8", errors="replace").splitlines()
    try:
        header = json.loads(lines[0]) if lines else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("version") != 2:
        raise BadParameter("not an asciicast v2 recording")
    last = 0.0
    for line in lines[1:]:
        try:
            at, code, data = json.loads(line)
        except (ValueError, TypeError):
            continue  # a damaged line is skipped, not fatal
        if code != "o" or not isinstance(data, str) or not isinstance(at, int | float):
            continue
        sleep(min(max(0.0, at - last), MAX_IDLE) / speed)
        last = at
        write(data)


def play(
    session_id: Annotated[str, typer.Argument(help="The session id (from `mez recordings ls`).")],
    speed: Annotated[float, typer.Option("--speed", help="Play this many times faster.")] = 1.0,
) -> None:
    """Play a session recording in this terminal."""
    from proto.errors import BadParameter

    if not 0.1 <= speed <= 1000:
        raise BadParameter("--speed is between 0.1 and 1000")
    api = _api()
    try:
        cast = api.recording(session_id)
    finally:
        api.close()

    def write(data: str) -> None:
        sys.stdout.write(data)
        sys.stdout.flush()

    play_cast(cast, speed, write, time.sleep)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="recordings")
    root.command("play")(play)
