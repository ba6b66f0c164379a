"""The one SSH server policy of every Mezite listener: the node's SSH server (mezd,
3022) and the proxy's SSH hop (3023) both take their connection options from
``certificate_only_options``, so an algorithm is offered or refused on both or on
neither. docs/ssh-policy.md says why each algorithm is here.

asyncssh's defaults are wide (SHA-1 key exchange, 1024-bit group exchange,
``hmac-sha1``, ``ssh-rsa`` and ``ssh-dss`` signatures, zlib); every list is given
explicitly instead. Whatever this asyncssh build lacks (sntrup761 needs liboqs, UMAC
needs nettle) is left out rather than failing; the unit tests hold the floors in
pyproject.toml to offering ``mlkem768x25519-sha256``.

The SHA-1 RSA *user* signature cannot be refused here: asyncssh verifies a user's
signature with any algorithm the key supports, whatever ``signature_algs`` says, so
proto.sshpolicy.check_user_certificate refuses it on both listeners."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncssh
from asyncssh.encryption import get_encryption_algs
from asyncssh.kex import get_kex_algs
from asyncssh.mac import get_mac_algs
from cryptography.hazmat.primitives.serialization import (
    SSHCertificate,
    SSHCertificateType,
    load_ssh_public_identity,
)

from proto.connlimit import AddressLimiter, Admission, Gate
from proto.errors import BadParameter
from proto.listener import Listener, bind_tcp

# Hybrid post-quantum first, then OpenSSH's own order of preference. No finite-field
# Diffie-Hellman: it is what the DHEat denial of service (CVE-2002-20001) makes servers
# compute, cryptography deprecates it (50.0.2 warns at every exchange), and clients with
# an elliptic-curve exchange (OpenSSH since 5.7, PuTTY since 0.68) do not need it.
KEX_ALGS = (
    "mlkem768x25519-sha256",
    "sntrup761x25519-sha512",
    "sntrup761x25519-sha512@openssh.com",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
)
ENCRYPTION_ALGS = (
    "chacha20-poly1305@openssh.com",
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
MAC_ALGS = (
    "umac-128-etm@openssh.com",
    "hmac-sha2-256-etm@openssh.com",
    "hmac-sha2-512-etm@openssh.com",
)
# What user keys may sign with (advertised in server-sig-algs): no SHA-1 ``ssh-rsa``.
SIGNATURE_ALGS = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
)
# Mezite's host keys are Ed25519 (nodes and proxies alike); an RSA host key would make
# asyncssh offer SHA-1 ``ssh-rsa`` host signatures, so no other kind is served.
HOST_KEY_ALGORITHM = "ssh-ed25519"
# Pre-authentication state is bounded in time and per client address, on both
# listeners: a connection has this long from accept to a successful login (version
# exchange, key exchange and authentication), and one address may have this many
# connections that have not logged in yet (over it: closed at accept, see
# proto.connlimit). Logged-in connections are not counted.
LOGIN_TIMEOUT_SECONDS = 20.0
UNAUTHENTICATED_PER_ADDRESS = 64


def available(wanted: tuple[str, ...], supported: list[bytes]) -> list[str]:
    """``wanted``, in its order, less what this asyncssh build does not implement."""
    return [alg for alg in wanted if alg.encode() in supported]


def offered_kex_algs() -> list[str]:
    return available(KEX_ALGS, get_kex_algs())


def check_host_credentials(
    key: asyncssh.SSHKey, cert: asyncssh.SSHCertificate, *, owner: str
) -> None:
    """BadParameter unless ``key`` is an Ed25519 key and ``cert`` an OpenSSH host
    certificate; ``owner`` ("node", "proxy") names whose they are in the error."""
    if key.get_algorithm() != HOST_KEY_ALGORITHM:
        raise BadParameter(f"the {owner}'s SSH host key must be Ed25519")
    line = cert.export_certificate("openssh")
    try:
        parsed = load_ssh_public_identity(line.split(b"\n")[0].strip())
    except ValueError as exc:
        raise BadParameter(f"the {owner}'s host certificate is not an OpenSSH certificate") from exc
    if not isinstance(parsed, SSHCertificate) or parsed.type is not SSHCertificateType.HOST:
        raise BadParameter(f"the {owner}'s host certificate must be a host certificate")


def certificate_only_options(
    *,
    owner: str,
    server_factory: Callable[[], asyncssh.SSHServer],
    host_key: asyncssh.SSHKey,
    host_cert: asyncssh.SSHCertificate,
    server_version: str,
    allow_pty: bool,
    agent_forwarding: bool,
    line_editor: bool = True,
    encoding: str | None = "utf-8",
    login_timeout: float = LOGIN_TIMEOUT_SECONDS,
) -> asyncssh.SSHServerConnectionOptions:
    """Connection options for a listener that authenticates Mezite user certificates
    only, with Mezite's algorithm lists and no compression. The last four are the
    listener's session settings (``line_editor`` and ``encoding`` as asyncssh's own
    defaults unless given)."""
    check_host_credentials(host_key, host_cert, owner=owner)
    return asyncssh.SSHServerConnectionOptions(
        server_factory=server_factory,
        server_host_keys=[(host_key, host_cert)],
        server_version=server_version,
        kex_algs=offered_kex_algs(),
        encryption_algs=available(ENCRYPTION_ALGS, get_encryption_algs()),
        mac_algs=available(MAC_ALGS, get_mac_algs()),
        signature_algs=list(SIGNATURE_ALGS),
        compression_algs=None,
        # Certificates only: no authorized_keys, no X.509, no passwords, no GSS.
        authorized_client_keys=None,
        x509_trusted_certs=None,
        public_key_auth=True,
        password_auth=False,
        kbdint_auth=False,
        host_based_auth=False,
        gss_host=None,
        gss_kex=False,
        gss_auth=False,
        login_timeout=login_timeout,
        allow_pty=allow_pty,
        x11_forwarding=False,
        agent_forwarding=agent_forwarding,
        line_editor=line_editor,
        encoding=encoding,
    )


class CountedServerConnection(asyncssh.SSHServerConnection):
    """A server connection counted against its client address until it has logged in
    (both listeners' connection classes derive from it)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        options: asyncssh.SSHServerConnectionOptions,
        admission: Admission | None = None,
    ) -> None:
        super().__init__(loop, options)
        self._admission = admission

    async def send_userauth_success(self) -> None:
        if self._admission is not None:
            self._admission.release()
        await super().send_userauth_success()

    def connection_lost(self, exc: Exception | None = None) -> None:
        if self._admission is not None:
            self._admission.release()
        super().connection_lost(exc)


async def listen_counted(
    make: Callable[[Admission], CountedServerConnection],
    host: str,
    port: int,
    *,
    unauthenticated_per_address: int = UNAUTHENTICATED_PER_ADDRESS,
    what: str,
) -> Listener:
    """An SSH listener whose connections pass the per-address gate first, accepted by
    proto.listener (which pauses instead of flooding the log when out of descriptors).
    OSError as bind raised it."""
    limiter = AddressLimiter(unauthenticated_per_address, what=what)
    return Listener(what, bind_tcp(host, port), lambda: Gate(limiter, make))
