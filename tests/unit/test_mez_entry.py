"""`mez ssh` runs without typer (cli/mez.py): the same arguments must reach the same code
either way in, and the entry point must know when typer has to answer instead."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

import cli.mez_ssh
from cli.mez import takes_fast_path
from cli.mez_app import app
from cli.mez_ssh import framework_args

WORDS = st.sampled_from(
    ["--", "-", "-v", "-l", "root", "-oUser=x", "--x", "node", "k=v", "a@node", "-tt",
     "true", "--debug", "--version", "-h", "-p", "22", "echo", "--", "-lroot"]
)  # fmt: skip


def typer_args(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the typer `ssh` command hands to cli.mez_ssh.ssh for ``mez ssh ARGV``."""
    seen: list[list[str]] = []
    monkeypatch.setattr(cli.mez_ssh, "ssh", lambda args: seen.append(list(args)) or 0)
    with contextlib.suppress(SystemExit):
        app(["ssh", *argv], prog_name="mez", standalone_mode=False)
    (args,) = seen
    return args


@given(st.lists(WORDS, max_size=8))
def test_both_ways_in_give_the_same_arguments(argv: list[str]) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert framework_args(argv) == typer_args(argv, monkeypatch)


@pytest.mark.parametrize(
    ("argv", "fast"),
    [
        (["ssh", "node", "true"], True),
        (["ssh", "-v", "--", "node"], True),
        (["ssh"], True),  # sshargs says what is missing, as through typer
        (["ssh", "--help"], False),
        (["ssh", "-v", "--help"], False),
        (["ssh", "node", "grep", "--help"], False),  # typer passes it on: also right
        (["--debug", "ssh", "node"], False),
        (["ls"], False),
        ([], False),
    ],
)
def test_which_way_in(argv: list[str], fast: bool) -> None:
    assert takes_fast_path(argv) is fast


def test_completion_goes_to_typer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("_MEZ_COMPLETE", "complete_bash")
    assert not takes_fast_path(["ssh", "node"])
