"""A real node SSH server on 127.0.0.1:0 for tests, with real CAs and certificates.

Certificates are built with cryptography's SSHCertificateBuilder, as the auth service
builds them, so they carry Mezite's extensions; the broken ones (expired, wrong CA,
host type, no principals, ...) are built the same way. Only the clock and the OS user
lookup are fake: ``alice`` is this process's own user (root in CI), ``nobody`` the
unprivileged account, with a home of its own under /tmp."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    SSHCertificateBuilder,
    SSHCertificateType,
    load_ssh_public_key,
)

from agent.recording import Spool
from agent.sshd import NodeSSHConfig, NodeSSHServer, OSUser, start_node_ssh_server
from proto.access import (
    INCARNATION_EXT,
    KIND_EXT,
    NODE_ACCESS_EXT,
    ROLES_EXT,
    USER_EXT,
    encode_node_access,
)
from proto.clock import FakeClock
from proto.lockwatch import LockView
from server.audit.events import new_event

HOST_ID = "6c1f3e1a-node-0001"
NODE_NAME = "node-1"
LABELS = {"env": "test", "team": "blue"}
SSH_BIN = shutil.which("ssh")
SFTP_BIN = shutil.which("sftp")
SCP_BIN = shutil.which("scp")
SSH_AGENT_BIN = shutil.which("ssh-agent")
SSH_ADD_BIN = shutil.which("ssh-add")

ALICE_INCARNATION = "a1" * 16
ALL_PERMITS = ("permit-pty", "permit-port-forwarding", "permit-agent-forwarding")


def public_line(key: ed25519.Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


def private_pem(key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())


@dataclass
class Recorded:
    type: str
    user: str
    success: bool
    session_id: str
    fields: dict[str, Any]


@dataclass
class RecordingAudit:
    """An AuditSink that keeps events, each checked by the real audit event rules
    (known type, no secret-looking field names, bounded values)."""

    clock: FakeClock
    events: list[Recorded] = field(default_factory=list)

    def emit(
        self,
        type: str,
        *,
        user: str = "",
        success: bool = True,
        session_id: str = "",
        **fields: Any,
    ) -> None:
        event = new_event(
            type, clock=self.clock, user=user, success=success, session_id=session_id, **fields
        )
        self.events.append(
            Recorded(event.type, event.user, event.success, event.session_id, dict(event.fields))
        )

    def of(self, type: str) -> list[Recorded]:
        return [e for e in self.events if e.type == type]

    async def wait_for(self, type: str, count: int = 1, within: float = 5.0) -> list[Recorded]:
        """Events are emitted by the server as it notices things (a closed connection,
        an exited child), which can be just after the client has its answer."""
        deadline = time.monotonic() + within
        while len(self.of(type)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} {type!r} events, got {self.events!r}")
            await asyncio.sleep(0.005)
        return self.of(type)


class FakeUsers:
    def __init__(self, users: Mapping[str, OSUser]) -> None:
        self._users = dict(users)

    def lookup(self, login: str) -> OSUser | None:
        return self._users.get(login)


@dataclass
class Authorities:
    user_ca: ed25519.Ed25519PrivateKey = field(default_factory=ed25519.Ed25519PrivateKey.generate)
    host_ca: ed25519.Ed25519PrivateKey = field(default_factory=ed25519.Ed25519PrivateKey.generate)
    rogue_ca: ed25519.Ed25519PrivateKey = field(default_factory=ed25519.Ed25519PrivateKey.generate)

    def host_credentials(
        self, now: float, principals: Sequence[str] = (HOST_ID, NODE_NAME, "127.0.0.1")
    ) -> tuple[asyncssh.SSHKey, asyncssh.SSHCertificate]:
        key = asyncssh.generate_private_key("ssh-ed25519")
        public = load_ssh_public_key(key.export_public_key())
        assert isinstance(public, ed25519.Ed25519PublicKey)
        line = (
            SSHCertificateBuilder()
            .public_key(public)
            .serial(7)
            .type(SSHCertificateType.HOST)
            .key_id(f"host={HOST_ID} serial=7".encode())
            .valid_principals([p.encode() for p in principals])
            .valid_after(int(now - 60))
            .valid_before(int(now + 3600))
            .sign(self.host_ca)
            .public_bytes()
        )
        return key, asyncssh.import_certificate(line)


@dataclass
class UserCert:
    """A user's key and certificate, as files for OpenSSH and objects for asyncssh."""

    key_path: Path
    cert_path: Path

    def asyncssh_keys(self) -> list[tuple[asyncssh.SSHKey, asyncssh.SSHCertificate]]:
        key = asyncssh.read_private_key(str(self.key_path))
        cert = asyncssh.read_certificate(str(self.cert_path))
        return [(key, cert)]


def node_access(allow: Sequence[Mapping[str, Sequence[str]]], deny: Sequence[Any] = ()) -> str:
    return encode_node_access(allow, deny)


@dataclass
class CertFactory:
    authorities: Authorities
    directory: Path
    clock: FakeClock
    serial: int = 100

    def issue(
        self,
        name: str,
        *,
        principals: Sequence[str] | None = ("alice", "nobody"),
        permits: Sequence[str] = ALL_PERMITS,
        access: str | None = None,
        user: str | None = "alice@example.com",
        signer: ed25519.Ed25519PrivateKey | None = None,
        cert_type: SSHCertificateType = SSHCertificateType.USER,
        valid_after: float | None = None,
        valid_before: float | None = None,
        critical_options: Mapping[str, str] | None = None,
        kind: str | None = "user",
        incarnation: str | None = ALICE_INCARNATION,
        roles: str = "access",
        key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey | None = None,
    ) -> UserCert:
        """A certificate for ``key`` (a fresh Ed25519 key by default); by default one
        Mezite would issue."""
        now = self.clock.now()
        self.serial += 1
        key = key or ed25519.Ed25519PrivateKey.generate()
        extensions = {p: "" for p in permits}
        if user is not None:
            extensions[USER_EXT] = user
        extensions[ROLES_EXT] = roles
        if kind is not None:
            extensions[KIND_EXT] = kind
        if incarnation is not None:
            extensions[INCARNATION_EXT] = incarnation
        extensions[NODE_ACCESS_EXT] = (
            access if access is not None else node_access([{"env": ["test"]}])
        )
        builder = (
            SSHCertificateBuilder()
            .public_key(key.public_key())
            .serial(self.serial)
            .type(cert_type)
            .key_id(f"user={user} serial={self.serial}".encode())
            .valid_after(int(now - 60 if valid_after is None else valid_after))
            .valid_before(int(now + 3600 if valid_before is None else valid_before))
        )
        if principals:
            builder = builder.valid_principals([p.encode() for p in principals])
        else:
            builder = builder.valid_for_all_principals()  # type: ignore[no-untyped-call]
        for ext_name, value in sorted(extensions.items()):
            builder = builder.add_extension(ext_name.encode(), value.encode())
        for opt_name, value in sorted((critical_options or {}).items()):
            builder = builder.add_critical_option(opt_name.encode(), value.encode())
        cert = builder.sign(signer or self.authorities.user_ca).public_bytes()
        key_path = self.directory / f"{name}.key"
        cert_path = self.directory / f"{name}.crt"
        key_path.write_bytes(private_pem(key))
        key_path.chmod(0o600)
        cert_path.write_bytes(cert + b"\n")
        return UserCert(key_path, cert_path)

    def plain_key(self, name: str) -> Path:
        key = ed25519.Ed25519PrivateKey.generate()
        path = self.directory / f"{name}.key"
        path.write_bytes(private_pem(key))
        path.chmod(0o600)
        return path


@dataclass
class SSHResult:
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode()


@dataclass
class RunningNode:
    server: NodeSSHServer
    audit: RecordingAudit
    clock: FakeClock
    certs: CertFactory
    authorities: Authorities
    nobody_home: Path
    client_dir: Path
    known_hosts: Path
    locks: LockView

    @property
    def port(self) -> int:
        return self.server.port

    def ssh_options(
        self, cert: UserCert | None, *, key: Path | None = None, known_hosts: Path | None = None
    ) -> list[str]:
        identity = key or (cert.key_path if cert else None)
        assert identity is not None
        options = [
            "-F",
            "/dev/null",
            "-o",
            f"UserKnownHostsFile={known_hosts or self.known_hosts}",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=10",
            "-i",
            str(identity),
        ]
        if cert is not None:
            options += ["-o", f"CertificateFile={cert.cert_path}"]
        return options

    async def ssh(
        self,
        cert: UserCert | None,
        *command: str,
        login: str = "alice",
        options: Sequence[str] = (),
        key: Path | None = None,
        known_hosts: Path | None = None,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
        limit: float = 30,
    ) -> SSHResult:
        """Run OpenSSH's ssh against the node; options go first, as ssh takes the
        first value of an option it sees."""
        assert SSH_BIN is not None
        args = [
            *options,
            *self.ssh_options(cert, key=key, known_hosts=known_hosts),
            "-p",
            str(self.port),
            f"{login}@127.0.0.1",
            *command,
        ]
        return await run(SSH_BIN, *args, stdin=stdin, env=env, limit=limit)

    def client_env(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.client_dir),
        } | extra

    async def connect(
        self, cert: UserCert, *, login: str = "alice", **kwargs: Any
    ) -> asyncssh.SSHClientConnection:
        """An asyncssh client connection (for what OpenSSH cannot script)."""
        return await asyncssh.connect(
            "127.0.0.1",
            self.port,
            username=login,
            client_keys=cert.asyncssh_keys(),
            known_hosts=None,
            agent_path=None,
            config=None,
            **kwargs,
        )


async def run(
    program: str,
    *args: str,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    limit: float = 30,
) -> SSHResult:
    proc = await asyncio.create_subprocess_exec(
        program,
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env) if env is not None else None,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return SSHResult(proc.returncode, out, err)


def _test_users(nobody_home: Path) -> FakeUsers:
    me = pwd.getpwuid(os.getuid())
    my_groups = tuple(os.getgrouplist(me.pw_name, me.pw_gid))
    # OSUser(name, uid, gid, home, shell, groups)
    return FakeUsers(
        {
            "alice": OSUser(me.pw_name, me.pw_uid, me.pw_gid, me.pw_dir, "/bin/sh", my_groups),
            "nobody": OSUser("nobody", 65534, 65534, str(nobody_home), "/bin/sh", (65534,)),
        }
    )


def _make_shared_dir() -> Path:
    """nobody's home must be reachable by nobody: pytest's tmp_path sits under a 0700
    directory, so it lives in /tmp instead, in a 0755 root-owned directory."""
    base = Path(tempfile.mkdtemp(prefix="mezite-sshd-", dir="/tmp"))
    base.chmod(0o755)
    home = base / "home"
    home.mkdir()
    os.chown(home, 65534, 65534)
    return base


def _make_client_dir(tmp_path: Path, host_ca: ed25519.Ed25519PrivateKey) -> Path:
    client_dir = tmp_path / "client"
    client_dir.mkdir()
    (client_dir / "known_hosts").write_text(f"@cert-authority * {public_line(host_ca)}\n")
    return client_dir


@asynccontextmanager
async def running_node(
    tmp_path: Path,
    *,
    labels: Mapping[str, str] = LABELS,
    spool: Spool | None = None,
    recording_done: Callable[[str], None] | None = None,
    **config: Any,
) -> AsyncIterator[RunningNode]:
    clock = FakeClock(time.time())
    authorities = Authorities()
    client_dir = _make_client_dir(tmp_path, authorities.host_ca)
    host_key, host_cert = authorities.host_credentials(clock.now())
    audit = RecordingAudit(clock)
    locks = LockView(clock, HOST_ID)
    base = _make_shared_dir()
    nobody_home = base / "home"
    try:
        server = await start_node_ssh_server(
            NodeSSHConfig(
                host_id=HOST_ID,
                node_name=NODE_NAME,
                labels=labels,
                host_key=host_key,
                host_cert=host_cert,
                user_ca_keys=[public_line(authorities.user_ca)],
                listen_host="127.0.0.1",
                listen_port=0,
                **config,
            ),
            audit,
            clock=clock,
            users=_test_users(nobody_home),
            locks=locks,
            spool=spool,
            recording_done=recording_done,
        )
        try:
            yield RunningNode(
                server=server,
                audit=audit,
                clock=clock,
                certs=CertFactory(authorities, client_dir, clock),
                authorities=authorities,
                nobody_home=nobody_home,
                client_dir=client_dir,
                known_hosts=client_dir / "known_hosts",
                locks=locks,
            )
        finally:
            server.close()
            await server.wait_closed()
    finally:
        shutil.rmtree(base, ignore_errors=True)
