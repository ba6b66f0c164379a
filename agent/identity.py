"""A node's identity on disk: what `mezd join` gets from auth and `mezd start` reuses.

``<data dir>/`` (0700) holds ``identity.json`` (who we are, where auth is, the pin),
the SSH host key and certificate, the X.509 client key and certificate, and the CA
material, each file 0600 and written atomically (``proto.lifecycle.IdentityDir``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from proto.errors import AlreadyExists, NotFound
from proto.lifecycle import IdentityDir

if TYPE_CHECKING:
    from proto.client import ClientIdentity
    from proto.keys import NodeKeys
    from proto.v1 import auth_pb2 as pb

IDENTITY_FILE = "identity.json"


@dataclass(frozen=True)
class NodeIdentity:
    agent_id: str
    name: str
    cluster_name: str
    auth_server: str
    ca_pin: str
    labels: dict[str, str]
    advertise_addrs: list[str]
    ssh_host_key_pem: str = field(repr=False)
    ssh_host_cert: str
    tls_key_pem: str = field(repr=False)
    tls_cert_pem: str
    tls_ca_pem: str
    user_ca_keys: list[str]
    host_ca_keys: list[str]
    expires: float

    _FILES: ClassVar[dict[str, str]] = {
        "ssh_host_key_pem": "ssh_host_key",
        "ssh_host_cert": "ssh_host_key-cert.pub",
        "tls_key_pem": "tls.key",
        "tls_cert_pem": "tls.crt",
        "tls_ca_pem": "ca.pem",
    }

    def renewed(self, keys: NodeKeys, creds: pb.AgentCredentials) -> NodeIdentity:
        """This identity with the keys generated here and what auth certified for them."""
        return replace(
            self,
            ssh_host_key_pem=keys.ssh_private_pem,
            ssh_host_cert=creds.ssh_host_certificate,
            tls_key_pem=keys.tls_private_pem,
            tls_cert_pem=creds.tls_certificate_pem,
            tls_ca_pem=creds.tls_ca_pem,
            user_ca_keys=list(creds.user_ca_keys),
            host_ca_keys=list(creds.host_ca_keys),
            expires=creds.expires,
        )

    def certifies_exactly(self, hosts: Iterable[str]) -> bool:
        """Whether the host certificate names ``hosts`` and nothing else besides what
        auth always gives a node (its id, name and name.cluster)."""
        from cryptography.hazmat.primitives.serialization import (
            SSHCertificate,
            load_ssh_public_identity,
        )

        cert = load_ssh_public_identity(self.ssh_host_cert.encode())
        assert isinstance(cert, SSHCertificate)
        own = {self.agent_id, self.name, f"{self.name}.{self.cluster_name}"}
        return {p.decode() for p in cert.valid_principals} == own | set(hosts)

    def client_identity(self) -> ClientIdentity:
        from proto.client import ClientIdentity

        return ClientIdentity(
            agent_id=self.agent_id,
            cert_pem=self.tls_cert_pem.encode(),
            key_pem=self.tls_key_pem.encode(),
        )

    def save(self, data_dir: Path) -> None:
        doc = asdict(self)
        files = {filename: doc.pop(attr) for attr, filename in self._FILES.items()}
        IdentityDir(data_dir, IDENTITY_FILE).save(doc, files)

    @classmethod
    def load(cls, data_dir: Path) -> NodeIdentity:
        found = IdentityDir(data_dir, IDENTITY_FILE).load(cls._FILES.values())
        if found is None:
            raise NotFound(
                f"this node has not joined a cluster (no {data_dir / IDENTITY_FILE})",
                hint="run `mezd join --token ...` (from `mezctl tokens add`), "
                "or `mezd start --token ...`",
            )
        doc, files = found
        doc.update({attr: files[name] for attr, name in cls._FILES.items()})
        try:
            return cls(**doc)
        except TypeError:
            fault = ValueError("fields are missing or unknown")
            raise IdentityDir(data_dir, IDENTITY_FILE).damaged(fault) from None

    @staticmethod
    def refuse_rejoin(data_dir: Path) -> None:
        doc = IdentityDir(data_dir, IDENTITY_FILE).peek()
        if doc is not None:
            raise AlreadyExists(
                f"this node already joined cluster {doc.get('cluster_name')!r} as "
                f"{doc.get('name')!r} ({doc.get('agent_id')})",
                hint=f"`mezd start --data-dir {data_dir}` runs it; to join anew, move "
                f"{data_dir} away first",
            )
