"""The one place that makes agents' credentials: SSH host or user certificates, X.509
client certificates, and the TLS server certificates of auth and proxies.

Services decide *whether* an agent gets credentials (tokens, renewals, locks); this
decides *what* they say, so node, proxy, agent identity and this host's own local
identities cannot drift apart. What differs by kind is the principal rule:

- node: its id (what `mez ssh` pins with HostKeyAlias), its name, ``name.cluster`` (what
  `mez config` blocks dial) and its advertised hosts;
- proxy (joined or in-process): its id, its name, ``proxy`` (the name `mez` checks) and
  the hosts ProxyJump clients dial;
- agent identity: the logins its roles allow (``UserCertSigner``, the path user
  certificates take too), in a user certificate;
- local admin: no SSH certificate, only a client certificate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from proto.addr import HostPort
from proto.clock import Clock
from proto.errors import BadParameter
from proto.kinds import AgentKind
from proto.trust import PROXY_SERVER_NAME
from proto.v1 import auth_pb2 as pb
from server.auth.crypto.ca import Authorities
from server.auth.crypto.sshcert import BACKDATE, CertifiableKey, SerialAllocator, parse_public_key
from server.auth.crypto.sshcert import sign_host_cert as _sign_host_cert
from server.auth.crypto.x509 import PublicKey, issue_client_cert, issue_server_cert
from server.auth.rbac import AccessChecker
from server.auth.services.certs import UserCertSigner
from server.auth.stores.agents import AgentRecord

HOST_CERT_TTL = 24 * 3600.0
# The certificates of listeners on the auth host (auth's TLS, the in-process proxy's HTTPS
# and SSH hop): made at every start and again with every renewal of the local identities
# (hours apart), so a week leaves room for a renewal that keeps failing to be noticed.
SERVER_CERT_TTL = 7 * 86400.0


def keys_fingerprint(ssh_public_key: str, *pems: str) -> str:
    """Public keys as one SHA-256 (an SSH line, then PEM public keys, an empty one
    allowed): what makes a retried join or bootstrap the same one. Comments and PEM line
    breaks do not count."""
    import hashlib

    digest = hashlib.sha256()
    digest.update(b" ".join(ssh_public_key.encode().split()[:2]))
    for pem in pems:
        der = b""
        if pem:
            try:
                der = serialization.load_pem_public_key(pem.encode()).public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            except ValueError:
                raise BadParameter("a public key is not PEM") from None
        digest.update(len(der).to_bytes(4, "big") + der)
    return digest.hexdigest()


def load_tls_public_key(pem: str) -> ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey:
    try:
        key = load_pem_public_key(pem.encode()) if len(pem) < 8192 else None
    except ValueError as exc:
        raise BadParameter("malformed X.509 public key") from exc
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1":
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise BadParameter("the X.509 key must be ECDSA P-256 or Ed25519")


def host_principals(
    kind: AgentKind, agent_id: str, name: str, cluster: str, hosts: Sequence[str]
) -> list[str]:
    """The names an agent's SSH host certificate is valid for (see the module doc)."""
    if kind == AgentKind.PROXY:
        return [agent_id, name, "proxy", *hosts]
    return [agent_id, name, f"{name}.{cluster}", *hosts]


def _host(addr: str) -> str:
    return HostPort.parse(addr).host


def pem_key(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    """A private key made here, as unencrypted PEM (OpenSSH format for SSH keys)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        fmt = serialization.PrivateFormat.OpenSSH
    else:
        fmt = serialization.PrivateFormat.PKCS8
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


@dataclass(frozen=True)
class KeyAndCert:
    """A key made on the auth host and what certifies it (a PEM chain or an SSH line)."""

    key_pem: bytes = field(repr=False)
    cert: bytes


class AgentIssuer:
    def __init__(
        self, cas: Authorities, serials: SerialAllocator, signer: UserCertSigner, clock: Clock
    ) -> None:
        self._cas = cas
        self._serials = serials
        self._signer = signer
        self._clock = clock

    @property
    def cluster_name(self) -> str:
        return self._cas.cluster_name

    @property
    def trust_domain(self) -> str:
        return self._cas.trust_domain

    @property
    def ca_pem(self) -> str:
        return self._cas.host_x509.cert_pem

    @property
    def user_ca_keys(self) -> list[str]:
        return [self._cas.user_ssh.public_line]

    @property
    def host_ca_keys(self) -> list[str]:
        return [self._cas.host_ssh.public_line]

    # --- the pieces ---------------------------------------------------------------------

    def client_cert(self, public_key: PublicKey, *, agent_id: str, kind: str, ttl: float) -> str:
        """An X.509 client certificate: CN = agent id, OU = kind, O = cluster."""
        cert = issue_client_cert(
            self._cas.host_x509,
            public_key,
            agent_id=agent_id,
            kind=kind,
            cluster_name=self._cas.cluster_name,
            now=self._clock.now(),
            ttl=ttl,
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    def server_chain(
        self, public_key: PublicKey, *, common_name: str, names: Sequence[str], ttl: float
    ) -> str:
        """A TLS server certificate followed by the CA: a client holding only the pin
        finds the CA in the chain."""
        cert = issue_server_cert(
            self._cas.host_x509,
            public_key,
            common_name=common_name,
            names=list(dict.fromkeys([common_name, *names])),
            now=self._clock.now(),
            ttl=ttl,
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode() + self.ca_pem

    async def host_cert(
        self, public_key: CertifiableKey, *, host_id: str, principals: Sequence[str], ttl: float
    ) -> tuple[str, int]:
        """An SSH host certificate valid from a minute ago (clock skew) for ``ttl``, and
        when it ends."""
        now = self._clock.now()
        expires = int(now + ttl)
        cert = _sign_host_cert(
            self._cas.host_ssh,
            public_key,
            host_id=host_id,
            principals=principals,
            serial=await self._serials.next(),
            valid_after=now - BACKDATE,
            valid_before=expires,
        )
        return cert, expires

    def new_server_tls(self, common_name: str, names: Sequence[str]) -> KeyAndCert:
        """A fresh key and a server chain for ``SERVER_CERT_TTL``, for listeners on the auth
        host."""
        key = ec.generate_private_key(ec.SECP256R1())
        chain = self.server_chain(
            key.public_key(), common_name=common_name, names=names, ttl=SERVER_CERT_TTL
        )
        return KeyAndCert(key_pem=pem_key(key), cert=chain.encode())

    async def new_proxy_ssh_host(self, host_id: str, hosts: Sequence[str]) -> KeyAndCert:
        """A fresh SSH host key and a host certificate for ``SERVER_CERT_TTL``, for the
        in-process proxy's SSH hop."""
        key = ed25519.Ed25519PrivateKey.generate()
        principals = host_principals(
            AgentKind.PROXY, host_id, host_id, self._cas.cluster_name, hosts
        )
        cert, _ = await self.host_cert(
            key.public_key(), host_id=host_id, principals=principals, ttl=SERVER_CERT_TTL
        )
        return KeyAndCert(key_pem=pem_key(key), cert=(cert + "\n").encode())

    # --- what an agent gets -------------------------------------------------------------

    async def host_credentials(
        self,
        record: AgentRecord,
        addrs: Sequence[str],
        ssh_key_line: str,
        tls_pem: str,
        server_pem: str = "",
    ) -> pb.AgentCredentials:
        """A node's or a proxy's: host certificate, client certificate and, for a proxy,
        its HTTPS server chain, all for one day."""
        ssh_key = parse_public_key(ssh_key_line)
        tls_key = load_tls_public_key(tls_pem)
        hosts = list(dict.fromkeys(_host(a) for a in addrs))
        principals = host_principals(
            record.kind, record.id, record.name, self._cas.cluster_name, hosts
        )
        host_cert, expires = await self.host_cert(
            ssh_key, host_id=record.id, principals=principals, ttl=HOST_CERT_TTL
        )
        server_chain = ""
        if record.kind == AgentKind.PROXY:
            server_chain = self.server_chain(
                load_tls_public_key(server_pem),
                common_name=PROXY_SERVER_NAME,
                names=hosts,
                ttl=HOST_CERT_TTL,
            )
        return pb.AgentCredentials(
            agent_id=record.id,
            ssh_host_certificate=host_cert,
            tls_certificate_pem=self.client_cert(
                tls_key, agent_id=record.id, kind=record.kind, ttl=HOST_CERT_TTL
            ),
            tls_ca_pem=self.ca_pem,
            user_ca_keys=self.user_ca_keys,
            host_ca_keys=self.host_ca_keys,
            expires=expires,
            labels=dict(record.labels),
            tls_server_certificate_pem=server_chain,
        )

    def svid(self, public_key_pem: str, role: str, workload: str, ttl: float) -> tuple[str, str]:
        """An X.509 SVID from the SPIFFE CA for spiffe://TD/role/ROLE/WORKLOAD: its ID and
        its PEM."""
        from cryptography.hazmat.primitives import serialization

        from server.auth.crypto.svid import issue_svid, load_svid_key, make_spiffe_id

        spiffe_id = make_spiffe_id(self._cas.trust_domain, role, workload)
        cert = issue_svid(self._cas.spiffe_x509, load_svid_key(public_key_pem), spiffe_id,
                          now=self._clock.now(), ttl=ttl)  # fmt: skip
        return str(spiffe_id), cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def spiffe_bundle_pem(self) -> str:
        return self._cas.spiffe_x509.cert_pem

    async def identity_credentials(
        self,
        *,
        name: str,
        agent_id: str,
        incarnation: str,
        ttl: float,
        checker: AccessChecker,
        ssh_key_line: str,
        tls_pem: str,
        generation: int,
        renewal_token: str,
    ) -> pb.AgentIdentityCredentials:
        """An agent identity's: a user certificate for its roles' logins (kind
        agent_identity) and a client certificate (kind bot) that ends with it."""
        signed = await self._signer.sign(
            name=name,
            incarnation=incarnation,
            checker=checker,
            public_key_line=ssh_key_line,
            requested_ttl=ttl,
            ttl_cap=ttl,
            cert_type="agent_identity",
        )
        tls_cert = self.client_cert(
            load_tls_public_key(tls_pem),
            agent_id=agent_id,
            kind=AgentKind.BOT,
            ttl=float(signed.valid_before) - self._clock.now(),
        )
        return pb.AgentIdentityCredentials(
            name=name,
            ssh_certificate=signed.certificate,
            tls_certificate_pem=tls_cert,
            tls_ca_pem=self.ca_pem,
            host_ca_keys=self.host_ca_keys,
            renewal_token=renewal_token,
            generation=generation,
            expires=signed.valid_before,
            agent_id=agent_id,
        )
