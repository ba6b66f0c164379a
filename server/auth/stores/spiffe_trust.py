"""Trusted external SPIFFE trust domains (a SPIRE server's, another Mezite's): each with
its bundle and the roles its SVIDs may claim. Stored in the backend, so every auth server
on it trusts the same domains; read through a watch-free lookup per call (a login is rare
enough), so a removal takes effect at once everywhere."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from proto.clock import Clock
from proto.errors import AlreadyExists, BadParameter, NotFound
from server.auth.crypto.svid import parse_bundle, validate_trust_domain
from server.backend import Backend, Item, prefix_range

TRUST_PREFIX = "spiffe_trust/"
MAX_TRUST_ROLES = 64


@dataclass(frozen=True)
class SPIFFETrust:
    trust_domain: str
    certs: tuple[x509.Certificate, ...]
    roles: tuple[str, ...]
    updated: float

    @property
    def bundle_pem(self) -> str:
        return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in self.certs)


class SPIFFETrustStore:
    def __init__(self, backend: Backend, clock: Clock, own_domain: str) -> None:
        self._backend = backend
        self._clock = clock
        self._own = own_domain

    async def put(
        self, trust_domain: str, bundle: str, roles: Sequence[str], *, create: bool
    ) -> SPIFFETrust:
        domain = validate_trust_domain(trust_domain)
        if domain == self._own:
            raise BadParameter(
                f"{domain!r} is this cluster's own trust domain: its CA is trusted already"
            )
        key = TRUST_PREFIX + domain
        if not create:
            try:
                current = self._decode(await self._backend.get(key))
            except NotFound:
                raise NotFound(f"the trust domain {domain!r} is not trusted") from None
            roles = roles or current.roles
            bundle = bundle or current.bundle_pem
        certs = tuple(parse_bundle(bundle))
        if not roles or len(roles) > MAX_TRUST_ROLES:
            raise BadParameter(f"name 1 to {MAX_TRUST_ROLES} roles the domain may claim (--roles)")
        trust = SPIFFETrust(domain, certs, tuple(dict.fromkeys(roles)), self._clock.now())
        item = Item(key=key, value=self._encode(trust))
        if create:
            try:
                await self._backend.create(item)
            except AlreadyExists:
                raise AlreadyExists(
                    f"the trust domain {domain!r} is trusted already",
                    hint="`mezctl spiffe trust update` changes its bundle or roles",
                ) from None
        else:
            await self._backend.put(item)
        return trust

    async def get(self, trust_domain: str) -> SPIFFETrust | None:
        try:
            return self._decode(await self._backend.get(TRUST_PREFIX + trust_domain))
        except (NotFound, BadParameter):
            return None

    async def list(self) -> list[SPIFFETrust]:
        items = await self._backend.get_range(*prefix_range(TRUST_PREFIX))
        return [self._decode(item) for item in items]

    async def delete(self, trust_domain: str) -> None:
        try:
            await self._backend.delete(TRUST_PREFIX + validate_trust_domain(trust_domain))
        except (NotFound, BadParameter):
            raise NotFound(f"the trust domain {trust_domain[:64]!r} is not trusted") from None

    @staticmethod
    def _encode(trust: SPIFFETrust) -> bytes:
        doc = {"bundle_pem": trust.bundle_pem, "roles": list(trust.roles), "updated": trust.updated}
        return json.dumps(doc).encode()

    @staticmethod
    def _decode(item: Item) -> SPIFFETrust:
        doc = json.loads(item.value)
        return SPIFFETrust(
            trust_domain=item.key.removeprefix(TRUST_PREFIX),
            certs=tuple(x509.load_pem_x509_certificates(doc["bundle_pem"].encode())),
            roles=tuple(doc["roles"]),
            updated=doc["updated"],
        )
