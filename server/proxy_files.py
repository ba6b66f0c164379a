"""The files a proxy's credentials live in, one directory per set: written by auth for
an in-process proxy (``AuthServer.local_proxy_credentials``) or by a lone proxy from
what auth issued it (``server.proxy.identity``), and read here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from proto.client import ClientIdentity

if TYPE_CHECKING:
    import asyncssh

CLIENT_KEY = "key.pem"  # the client identity auth knows the proxy by (kind proxy)
CLIENT_CERT = "cert.pem"
CA = "ca.pem"  # the host X.509 CA
WEB_KEY = "web.key"  # the HTTPS server key and certificate chain
WEB_CERT = "web.pem"
SSH_HOST_KEY = "ssh_host_key"
SSH_HOST_CERT = "ssh_host_key-cert.pub"
USER_CA = "user_ca.pub"  # the user SSH CA keys the SSH hop trusts, one per line


@dataclass(frozen=True)
class ProxyCredentials:
    """What auth handed this proxy: its client identity, web TLS and SSH host files."""

    directory: Path
    agent_id: str

    def identity(self) -> ClientIdentity:
        return ClientIdentity(
            agent_id=self.agent_id,
            cert_pem=(self.directory / CLIENT_CERT).read_bytes(),
            key_pem=(self.directory / CLIENT_KEY).read_bytes(),
        )

    @property
    def ca_pem(self) -> bytes:
        return (self.directory / CA).read_bytes()

    @property
    def web_cert_file(self) -> Path:
        return self.directory / WEB_CERT

    @property
    def web_key_file(self) -> Path:
        return self.directory / WEB_KEY

    def ssh_host(self) -> tuple[asyncssh.SSHKey, asyncssh.SSHCertificate]:
        import asyncssh

        return (
            asyncssh.import_private_key((self.directory / SSH_HOST_KEY).read_bytes()),
            asyncssh.import_certificate((self.directory / SSH_HOST_CERT).read_bytes()),
        )

    def user_ca_keys(self) -> list[str]:
        return (self.directory / USER_CA).read_text().splitlines()
