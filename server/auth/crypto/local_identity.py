"""Client identities for components on the auth server's own host: the local admin
identity that mezctl uses, and the in-process proxy's.

Each start makes a new one under a fresh agent id (``local-admin-<random>``) and removes
the previous start's registration, so a copy of an earlier start's files is refused. Its
certificate lasts hours, not a year: the running server renews it (same key and id) when a
third of its life is left, and its agent record expires with it, so one left behind by a
crash lapses on its own."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from proto.clock import Clock
from proto.errors import NotFound
from proto.files import write_private
from proto.kinds import AgentKind
from proto.trust import PROXY_SERVER_NAME, certificate_agent_id
from server import proxy_files as files
from server.auth.crypto.issuer import AgentIssuer, pem_key
from server.auth.stores.agents import AgentRecord, AgentStore

log = logging.getLogger(__name__)

LOCAL_IDENTITY_TTL = 6 * 3600.0
LOCAL_PROXY_HOST_ID = "local-proxy"


class LocalIdentity:
    def __init__(
        self,
        agents: AgentStore,
        issuer: AgentIssuer,
        clock: Clock,
        directory: Path,
        *,
        prefix: str,
        kind: AgentKind,
        ttl: float = LOCAL_IDENTITY_TTL,
    ) -> None:
        self._agents = agents
        self._issuer = issuer
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
        cert = self._issuer.client_cert(
            self._key.public_key(), agent_id=self.agent_id, kind=self._kind, ttl=self.ttl
        )
        self.expires = now + self.ttl
        record = AgentRecord(id=self.agent_id, kind=self._kind, name=self.agent_id, created=now)
        await self._agents.put(record, expires=self.expires)
        write_private(self.directory / files.CA, self._issuer.ca_pem)
        write_private(self.directory / files.CLIENT_CERT, cert)

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


async def write_local_proxy_files(
    issuer: AgentIssuer, directory: Path, names: Sequence[str]
) -> None:
    """What an in-process proxy serves with besides its client identity: a TLS server
    certificate for its web listener, an SSH host key and certificate for ProxyJump
    clients that trust the host CA, and the user CA its SSH hop trusts."""
    web = issuer.new_server_tls(PROXY_SERVER_NAME, names)
    write_private(directory / files.WEB_CERT, web.cert)
    write_private(directory / files.WEB_KEY, web.key_pem)
    ssh = await issuer.new_proxy_ssh_host(LOCAL_PROXY_HOST_ID, list(dict.fromkeys(names)))
    write_private(directory / files.SSH_HOST_KEY, ssh.key_pem)
    write_private(directory / files.SSH_HOST_CERT, ssh.cert)
    write_private(directory / files.USER_CA, "".join(k + "\n" for k in issuer.user_ca_keys))
