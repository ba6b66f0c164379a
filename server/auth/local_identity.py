"""Client identities for components on the auth server's own host: the local admin
identity that mezctl uses, and the in-process proxy's.

Each start makes a new one under a fresh agent id (``local-admin-<random>``) and removes
the previous start's registration, so a copy of an earlier start's files is refused. Its
certificate lasts hours, not a year: the running server renews it (same key and id) a
third of the way through, and its agent record expires with it, so one left behind by a
crash lapses on its own."""

from __future__ import annotations

import contextlib
import logging
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from proto.clock import Clock
from proto.errors import NotFound
from proto.files import write_private
from proto.trust import certificate_agent_id
from server import proxy_files as files
from server.auth.agents import AgentRecord, AgentStore
from server.auth.ca import Authorities
from server.auth.x509 import issue_client_cert

log = logging.getLogger(__name__)

LOCAL_IDENTITY_TTL = 6 * 3600.0


def pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class LocalIdentity:
    def __init__(
        self,
        agents: AgentStore,
        cas: Authorities,
        clock: Clock,
        directory: Path,
        *,
        prefix: str,
        kind: str,
        ttl: float = LOCAL_IDENTITY_TTL,
    ) -> None:
        self._agents = agents
        self._cas = cas
        self._clock = clock
        self.directory = directory
        self._prefix = prefix
        self._kind = kind
        self.ttl = ttl
        self.agent_id = ""
        self.expires = 0.0
        self._key: ec.EllipticCurvePrivateKey | None = None

    async def issue(self) -> None:
        """A new identity for this start; the previous start's is refused from now on."""
        await self._forget_previous()
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.agent_id = f"{self._prefix}-{secrets.token_hex(8)}"
        write_private(self.directory / files.CLIENT_KEY, pem_key(self._key))
        await self.renew()

    async def renew(self) -> None:
        """A fresh certificate for the same key and id, and a registration that lasts
        as long. The key is kept so a reader never pairs a new key with an old cert."""
        assert self._key is not None, "issue() first"
        now = self._clock.now()
        cert = issue_client_cert(
            self._cas.host_x509,
            self._key.public_key(),
            agent_id=self.agent_id,
            kind=self._kind,
            cluster_name=self._cas.cluster_name,
            now=now,
            ttl=self.ttl,
        )
        self.expires = now + self.ttl
        record = AgentRecord(id=self.agent_id, kind=self._kind, name=self.agent_id, created=now)
        await self._agents.put(record, expires=self.expires)
        write_private(self.directory / files.CA, self._cas.host_x509.cert_pem)
        write_private(
            self.directory / files.CLIENT_CERT, cert.public_bytes(serialization.Encoding.PEM)
        )

    async def retire(self) -> None:
        if self.agent_id:
            with contextlib.suppress(NotFound):
                await self._agents.delete(self.agent_id)

    async def _forget_previous(self) -> None:
        try:
            previous = certificate_agent_id((self.directory / files.CLIENT_CERT).read_bytes())
        except (OSError, ValueError):
            return
        if previous.startswith(self._prefix):
            with contextlib.suppress(NotFound):
                await self._agents.delete(previous)
                log.info("the previous start's %s identity %s is retired", self._kind, previous)
