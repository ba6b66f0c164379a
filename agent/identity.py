"""A node's identity on disk: what `mezd join` gets from auth and `mezd start` reuses.

``<data dir>/`` (0700) holds ``identity.json`` (who we are, where auth is, the pin),
the SSH host key and certificate, the X.509 client key and certificate, and the CA
material, each file 0600 and written atomically."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

from proto.errors import AlreadyExists, NotFound
from proto.files import check_private_file, ensure_private_dir, write_private

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

    def save(self, data_dir: Path) -> None:
        ensure_private_dir(data_dir)
        doc = asdict(self)
        for attr, filename in self._FILES.items():
            write_private(data_dir / filename, doc.pop(attr))
        write_private(data_dir / IDENTITY_FILE, json.dumps(doc, indent=2, sort_keys=True))

    @classmethod
    def load(cls, data_dir: Path) -> NodeIdentity:
        path = data_dir / IDENTITY_FILE
        if not path.exists():
            raise NotFound(
                f"this node has not joined a cluster (no {path})",
                hint="run `mezd join --token ...` (from `mezctl tokens add`), "
                "or `mezd start --token ...`",
            )
        ensure_private_dir(data_dir)
        doc = json.loads(path.read_text())
        for attr, filename in cls._FILES.items():
            doc[attr] = check_private_file(data_dir / filename).read_text()
        return cls(**doc)

    @staticmethod
    def refuse_rejoin(data_dir: Path) -> None:
        path = data_dir / IDENTITY_FILE
        if path.exists():
            doc = json.loads(path.read_text())
            raise AlreadyExists(
                f"this node already joined cluster {doc.get('cluster_name')!r} as "
                f"{doc.get('name')!r} ({doc.get('agent_id')})",
                hint=f"`mezd start --data-dir {data_dir}` runs it; to join anew, move "
                f"{data_dir} away first",
            )
