"""`mez ssh` reads its command line as OpenSSH's ssh does: what rsync, git, Ansible, scp -S
and sftp -S pass it, and what it maps, ignores and refuses."""

from __future__ import annotations

import pytest

from cli.sshargs import SSHCall, parse
from proto.errors import BadParameter


def test_a_destination_and_a_command() -> None:
    assert parse(["web-1", "ls", "-la"]) == SSHCall("web-1", command=("ls", "-la"))
    assert parse(["alice@web-1"]) == SSHCall("alice@web-1")


def test_options_after_the_destination_are_read_as_ssh_reads_them() -> None:
    # OpenSSH restarts getopt after the host: `ssh -G web-1 -l root` shows `user root`.
    call = parse(["web-1", "-l", "root", "-p", "22", "ls", "-l", "/tmp"])
    assert (call.target, call.login, call.command) == ("web-1", "root", ("ls", "-l", "/tmp"))
    assert parse(["web-1", "-tt", "top"]).flags == ("-t", "-t")
    with pytest.raises(BadParameter, match="-J is not supported"):
        parse(["web-1", "-J", "other", "cmd"])
    assert parse(["web-1", "--", "-l", "root"]).command == ("-l", "root")


def test_one_double_dash_after_the_destination_is_ssh_s_own() -> None:
    assert parse(["web-1", "--", "id", "-un"]).command == ("id", "-un")
    assert parse(["web-1", "--", "--", "x"]).command == ("--", "x")
    assert parse(["web-1", "echo", "--"]).command == ("echo", "--")


def test_double_dash_ends_the_options() -> None:
    call = parse(["-l", "root", "--", "-web", "cmd"])
    assert (call.target, call.login, call.command) == ("-web", "root", ("cmd",))


def test_rsync_s_command_line() -> None:
    # rsync -e 'mez ssh' user@web-1:dst: `-l user web-1 rsync --server ...`
    call = parse(["-l", "deploy", "web-1", "rsync", "--server", "-logDtpre.iLsfxCIvu", ".", "/d"])
    assert (call.target, call.login, call.flags) == ("web-1", "deploy", ())
    assert call.command == ("rsync", "--server", "-logDtpre.iLsfxCIvu", ".", "/d")


def test_git_s_command_lines() -> None:
    probe = parse(["-G", "-o", "SendEnv=GIT_PROTOCOL", "-p", "2222", "web-1"])
    assert probe.flags == ("-G", "-o", "SendEnv=GIT_PROTOCOL") and probe.target == "web-1"
    assert probe.notes == ("ignoring -p 2222: a node is reached on the port it registered",)
    run = parse(["-o", "SendEnv=GIT_PROTOCOL", "web-1", "git-upload-pack '/srv/r.git'"])
    assert run.command == ("git-upload-pack '/srv/r.git'",)


def test_ansible_s_command_line() -> None:
    args = [
        "-C", "-o", "ControlMaster=auto", "-o", "ControlPersist=60s",
        "-o", "StrictHostKeyChecking=no", "-o", "Port=22",
        "-o", 'IdentityFile="/home/a/.ssh/id_ed25519"',
        "-o", "KbdInteractiveAuthentication=no",
        "-o", "PasswordAuthentication=no", "-o", 'User="deploy"', "-o", "ConnectTimeout=10",
        "-o", 'ControlPath="/root/.ansible/cp/abc"', "-tt", "-vvv", "web-1",
        "/bin/sh -c 'echo ~deploy && sleep 0'",
    ]  # fmt: skip
    call = parse(args)
    assert call.login == "deploy" and call.target == "web-1"
    assert call.flags == (
        "-C", "-o", "ControlMaster=auto", "-o", "ControlPersist=60s",
        "-o", "KbdInteractiveAuthentication=no", "-o", "PasswordAuthentication=no",
        "-o", "ConnectTimeout=10", "-o", 'ControlPath="/root/.ansible/cp/abc"',
        "-t", "-t", "-v", "-v", "-v",
    )  # fmt: skip
    assert [note.split(":")[0] for note in call.notes] == [
        "ignoring -o StrictHostKeyChecking",
        "ignoring -o Port",
        "ignoring -o IdentityFile",
    ]


def test_scp_and_sftp_s_command_lines() -> None:
    # scp -S: -oKey=Value glued; sftp -S: "-oKey value" with a space.
    scp = parse(["-x", "-oPermitLocalCommand=no", "-oClearAllForwardings=yes", "-l", "bob",
                 "--", "web-1", "scp", "-t", "/tmp"])  # fmt: skip
    assert scp.flags == ("-x", "-o", "PermitLocalCommand=no", "-o", "ClearAllForwardings=yes")
    assert (scp.login, scp.target, scp.command) == ("bob", "web-1", ("scp", "-t", "/tmp"))
    sftp = parse(["-oForwardX11 no", "-oPermitLocalCommand no", "-s", "--", "web-1", "sftp"])
    assert sftp.flags == ("-o", "ForwardX11 no", "-o", "PermitLocalCommand no", "-s")


def test_values_glued_or_apart_and_bundled_flags() -> None:
    assert parse(["-lroot", "web-1"]).login == "root"
    assert parse(["-46Cq", "web-1"]).flags == ("-4", "-6", "-C", "-q")
    assert parse(["-tlroot", "web-1"]) == SSHCall("web-1", "root", ("-t",))
    assert parse(["-L8080:localhost:80", "-N", "web-1"]).flags == ("-L", "8080:localhost:80", "-N")
    assert parse(["-o", "User = carol", "web-1"]).login == "carol"


def test_the_first_login_given_wins_and_beats_login_at() -> None:
    # As OpenSSH: `ssh -l a -o User=b c@host` logs in as a.
    assert parse(["-l", "a", "-o", "User=b", "c@web-1"]).login == "a"
    assert parse(["-o", "user=b", "-l", "a", "c@web-1"]).login == "b"
    assert parse(["c@web-1"]).login == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-F", "cfg", "web-1"], "mez ssh: -F is not supported: mez ssh writes its own"),
        (["-Jjump", "web-1"], "mez ssh: -J is not supported: mez ssh routes"),
        (["-w", "0:0", "web-1"], "mez ssh: -w is not supported"),
        (["-o", "ProxyCommand=nc evil 22", "web-1"], "mez ssh: -o ProxyCommand is not supported"),
        (["-o", "proxyjump x", "web-1"], "mez ssh: -o proxyjump is not supported"),
        (["-oHostName=10.0.0.1", "web-1"], "mez ssh: -o HostName is not supported"),
        (["-Z", "web-1"], "mez ssh: unknown option -Z"),
        (["--port=22", "web-1"], "mez ssh: unknown option --port=22"),
        (["-o", "User", "web-1"], "mez ssh: -o 'User': give Option=Value"),
        (["-p", "http", "web-1"], "mez ssh: bad port 'http'"),
        (["-p", "0", "web-1"], "mez ssh: bad port '0'"),
        (["-l"], "mez ssh: -l needs a value"),
        (["-v", "-l", "root"], "mez ssh: give a destination"),
        ([], "mez ssh: give a destination"),
    ],
)
def test_refusals_are_one_clear_line(args: list[str], message: str) -> None:
    with pytest.raises(BadParameter) as refused:
        parse(args)
    assert refused.value.message.startswith(message)
    assert "\n" not in refused.value.message


def test_pinned_options_never_reach_ssh() -> None:
    pinned = ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "HostKeyAlias=x",
              "GlobalKnownHostsFile=/tmp/kh", "CertificateFile=/tmp/c", "IdentitiesOnly=no",
              "KnownHostsCommand=/bin/true", "CHECKHOSTIP yes", "Port=2222"]  # fmt: skip
    args = [a for option in pinned for a in ("-o", option)]
    call = parse([*args, "-i", "/tmp/key", "web-1"])
    assert call.flags == () and len(call.notes) == len(pinned) + 1
