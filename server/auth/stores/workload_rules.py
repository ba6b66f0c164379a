"""Workload rules: which processes, on which nodes, may hold an SVID for which role (the
SPIFFE Workload API that mezd serves). A rule names the role, the node labels it applies
to, and what the node's kernel must attest of the process: a uid or user name, a gid, an
executable; it must name at least a uid, a user or an executable, so no rule admits every
process on a node. Stored in the backend, read per request: a removed rule stops renewal
at the next one."""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from proto.errors import AlreadyExists, BadParameter, NotFound
from server.auth.crypto.svid import make_spiffe_id
from server.auth.stores.join_tokens import validate_labels
from server.backend import Backend, Item, prefix_range

RULES_PREFIX = "workload_rules/"
DEFAULT_WORKLOAD_TTL = 3600.0
MIN_WORKLOAD_TTL = 10.0
MAX_WORKLOAD_TTL = 24 * 3600.0
MAX_ID = 2**32 - 1


@dataclass(frozen=True)
class Facts:
    """What a node's kernel attested about a process."""

    uid: int
    gid: int
    user: str
    exe: str


@dataclass(frozen=True)
class WorkloadRule:
    name: str
    role: str
    node_labels: Mapping[str, str] = field(default_factory=dict)
    unix_uid: int | None = None
    unix_gid: int | None = None
    unix_user: str = ""
    exe: str = ""
    ttl: float = DEFAULT_WORKLOAD_TTL

    def applies_on(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.node_labels.items())

    def admits(self, facts: Facts) -> bool:
        return (
            (self.unix_uid is None or facts.uid == self.unix_uid)
            and (self.unix_gid is None or facts.gid == self.unix_gid)
            and (not self.unix_user or facts.user == self.unix_user)
            and (not self.exe or facts.exe == self.exe)
        )


def checked_rule(rule: WorkloadRule, trust_domain: str) -> WorkloadRule:
    make_spiffe_id(trust_domain, rule.role, rule.name)  # the ID its SVIDs name
    if rule.unix_uid is None and not rule.unix_user and not rule.exe:
        raise BadParameter(
            f"workload rule {rule.name!r} would admit every process on its nodes",
            hint="name --unix-uid, --unix-user or --exe",
        )
    if rule.unix_uid is not None and rule.unix_user:
        raise BadParameter("name --unix-uid or --unix-user, not both")
    for value in (rule.unix_uid, rule.unix_gid):
        if value is not None and not 0 <= value <= MAX_ID:
            raise BadParameter(f"invalid uid or gid {value}")
    if rule.unix_user and not rule.unix_user.replace("-", "").replace("_", "").isalnum():
        raise BadParameter(f"invalid user name {rule.unix_user[:64]!r}")
    if rule.exe and (not rule.exe.startswith("/") or posixpath.normpath(rule.exe) != rule.exe
                     or len(rule.exe) > 4096):  # fmt: skip
        raise BadParameter(f"--exe must be a normalised absolute path, not {rule.exe[:80]!r}")
    if not MIN_WORKLOAD_TTL <= rule.ttl <= MAX_WORKLOAD_TTL:
        raise BadParameter("a workload SVID's TTL is between 10 seconds and 24 hours")
    validate_labels(rule.node_labels)
    return rule


class WorkloadRules:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def create(self, rule: WorkloadRule) -> None:
        item = Item(key=RULES_PREFIX + rule.name, value=json.dumps(asdict(rule)).encode())
        try:
            await self._backend.create(item)
        except AlreadyExists:
            raise AlreadyExists(f"a workload rule named {rule.name!r} exists") from None

    async def list(self) -> list[WorkloadRule]:
        items = await self._backend.get_range(*prefix_range(RULES_PREFIX))
        return [WorkloadRule(**json.loads(item.value)) for item in items]

    async def delete(self, name: str) -> None:
        try:
            await self._backend.delete(RULES_PREFIX + name)
        except (NotFound, BadParameter):
            raise NotFound(f"no workload rule named {name[:64]!r}") from None
