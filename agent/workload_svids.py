"""The SVIDs mezd holds for the processes on its node: asked of auth (IssueWorkloadSVIDs,
over the node's own mTLS identity) for an attested process's facts and a key made here,
which never leaves the node; cached per facts and reused while more than half their
lifetime remains."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agent.attest import Facts
from proto.client import AsyncAuthClient
from proto.clock import Clock, SystemClock
from proto.errors import Internal
from proto.v1 import auth_pb2 as pb

log = logging.getLogger(__name__)

# What auth is asked: the facts and the PEM public key the SVIDs are to certify.
Issuer = Callable[[Facts, str], Awaitable[pb.IssueWorkloadSVIDsResponse]]

MAX_CACHED = 1024  # distinct (uid, gid, user, exe) held at once
# How long "no rule admits it" is believed: a process that keeps asking does not make
# the node ask auth each time, and a rule added for it counts within this long.
REFUSAL_TTL = 5.0


@dataclass(frozen=True)
class HeldSVID:
    rule: str
    spiffe_id: str
    chain_der: bytes  # leaf first, as the Workload API sends it
    expires: float


@dataclass(frozen=True)
class Issued:
    """One answer from auth for one process's facts, with the key its SVIDs certify."""

    svids: tuple[HeldSVID, ...]
    key_der: bytes  # PKCS#8
    trust_domain: str
    bundle_der: bytes
    received: float

    @property
    def expires(self) -> float:
        return min((s.expires for s in self.svids), default=self.received)

    @property
    def half_life(self) -> float:
        """Renew from here on: half of the lifetime it had when it arrived."""
        return self.received + (self.expires - self.received) / 2


def der_certs(pem: str) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return b"".join(
        c.public_bytes(serialization.Encoding.DER)
        for c in x509.load_pem_x509_certificates(pem.encode())
    )


def auth_issuer(client: Callable[[], AsyncAuthClient]) -> Issuer:
    """IssueWorkloadSVIDs through the node's current client (it changes on renewal)."""

    async def issue(facts: Facts, public_key_pem: str) -> pb.IssueWorkloadSVIDsResponse:
        wire = pb.WorkloadFacts(pid=facts.pid, uid=facts.uid, gid=facts.gid, user=facts.user,
                                exe=facts.exe)  # fmt: skip
        reply: pb.IssueWorkloadSVIDsResponse = await client().rpc.IssueWorkloadSVIDs(
            pb.IssueWorkloadSVIDsRequest(facts=wire, public_key_pem=public_key_pem)
        )
        return reply

    return issue


def _held(svid: pb.WorkloadSVID, public_der: bytes) -> HeldSVID:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    chain = x509.load_pem_x509_certificates(svid.svid_chain_pem.encode())
    spki = (
        chain[0]
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    if spki != public_der:
        raise Internal(f"auth's SVID for {svid.spiffe_id!r} certifies another key")
    der = b"".join(c.public_bytes(serialization.Encoding.DER) for c in chain)
    return HeldSVID(svid.rule, svid.spiffe_id, der, svid.expires)


class SVIDCache:
    def __init__(self, issuer: Issuer, clock: Clock | None = None) -> None:
        self._issuer = issuer
        self._clock = clock or SystemClock()
        self._held: dict[tuple[int, int, str, str], Issued] = {}
        self._refused: dict[tuple[int, int, str, str], Issued] = {}
        self._locks: dict[tuple[int, int, str, str], asyncio.Lock] = {}
        self.issued = 0  # answers asked of auth (for tests and logs)

    def cached(self, facts: Facts) -> Issued | None:
        now = self._clock.now()
        refused = self._refused.get(facts.key)
        if refused is not None and now < refused.received + REFUSAL_TTL:
            return refused
        held = self._held.get(facts.key)
        return held if held is not None and now < held.half_life else None

    async def get(self, facts: Facts) -> Issued:
        """The process's SVIDs: the cached ones while in their first half of life, else a
        fresh answer from auth (with no SVIDs when no rule admits the process)."""
        lock = self._locks.setdefault(facts.key, asyncio.Lock())
        async with lock:
            held = self.cached(facts)
            if held is None:
                held = await self._issue(facts)
            return held

    async def _issue(self, facts: Facts) -> Issued:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        public_der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        reply = await self._issuer(facts, public_pem.decode())
        self.issued += 1
        now = self._clock.now()
        svids = tuple(_held(s, public_der) for s in reply.svids)
        if not svids:
            self._held.pop(facts.key, None)
            refused = Issued((), b"", reply.trust_domain, b"", now)
            self._refused = {k: v for k, v in self._refused.items()
                             if now < v.received + REFUSAL_TTL}  # fmt: skip
            if len(self._refused) < MAX_CACHED:
                self._refused[facts.key] = refused
            return refused
        self._refused.pop(facts.key, None)
        issued = Issued(
            svids=svids,
            key_der=key.private_bytes(serialization.Encoding.DER,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()),
            trust_domain=reply.trust_domain,
            bundle_der=der_certs(reply.bundle_pem),
            received=now,
        )  # fmt: skip
        self._prune(now)
        self._held[facts.key] = issued
        log.info("workload SVIDs %s for uid %d (%s) exe %s, pid %d",
                 ", ".join(s.spiffe_id for s in svids), facts.uid, facts.user or "-", facts.exe,
                 facts.pid)  # fmt: skip
        return issued

    def _prune(self, now: float) -> None:
        for key in [k for k, v in self._held.items() if v.expires <= now]:
            del self._held[key]
            self._locks.pop(key, None)
        while len(self._held) >= MAX_CACHED:
            oldest = min(self._held, key=lambda k: self._held[k].received)
            del self._held[oldest]
