"""What a node or proxy knows of the locks in force, and the stream that keeps it current.

``LockView`` answers one question, "does anything refuse this subject here?", from:
- the last lock set auth sent (``WatchLocks``: the whole set at once, on every change
  and as a keepalive), saved to disk so that a restart while auth is away still enforces
  every lock it knew (fail closed for known locks);
- whether auth refuses this agent's own identity (removed from the cluster): then
  everyone is refused here, until auth accepts it again;
- the cluster's locking mode for a stale view (no word from auth for longer than the
  cluster's ``lock_max_staleness``): ``best_effort`` keeps enforcing the locks it knows,
  ``strict`` refuses everyone, as Teleport's ``locking_mode`` does.

``watch_locks`` runs the stream, reconnecting with backoff; listeners run after every
change so that live sessions of a newly locked subject can be ended.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from proto.backoff import Backoff
from proto.clock import Clock
from proto.files import write_private
from proto.locks import DEFAULT_LOCKING_MODE, Lock, LockSet, LockTarget, Subject

if TYPE_CHECKING:
    from proto.client import AsyncAuthClient

log = logging.getLogger(__name__)

RECHECK_INTERVAL = 1.0  # seconds between checks of live sessions (expiry, staleness)
SAVE_HEARD_EVERY = 60.0  # a keepalive is written to disk at most this often


class LockView:
    def __init__(self, clock: Clock, agent_id: str, path: Path | None = None) -> None:
        self._clock = clock
        self.agent_id = agent_id
        self._path = path
        self.locks = LockSet()
        self.heard = 0.0  # when auth last spoke (0: never, this start or before)
        self.refused = ""  # why auth refuses this agent's identity, if it does
        self._saved_heard = 0.0
        self._listeners: list[Callable[[], None]] = []
        if path is not None:
            self._load(path)

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _changed(self) -> None:
        self._save()
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("lock listener failed")

    def update(self, locks: LockSet) -> None:
        """A lock set from auth (a keepalive repeats the last one)."""
        changed = locks != self.locks or bool(self.refused)
        self.locks, self.refused, self.heard = locks, "", self._clock.now()
        if changed:
            log.info("%d lock(s) in force", len(locks.locks))
            self._changed()
        elif self.heard - self._saved_heard >= SAVE_HEARD_EVERY:
            # So that a restart while auth is away knows how fresh the copy is.
            self._save()

    def refuse_self(self, reason: str) -> None:
        """Auth refuses this agent's identity: removed from the cluster (or worse)."""
        if not self.refused:
            log.warning("auth refuses this agent (%s): refusing every login here", reason)
        self.refused = reason or "refused by auth"
        self._changed()

    def stale(self) -> bool:
        return self._clock.now() - self.heard > self.locks.max_staleness

    def refusal(self, subject: Subject) -> str | None:
        """Why ``subject`` may not get in here (a message for the refused user), or
        None. ``subject.node`` should name this agent where it is the one reached."""
        if self.refused:
            return "this server has been removed from the cluster"
        now = self._clock.now()
        lock = self.locks.find(subject, now)
        if lock is not None:
            return lock.message()
        if self.locks.locking_mode == "strict" and self.stale():
            return "the lock list is out of date and the cluster's locking mode is strict"
        return None

    # --- the copy on disk, so a restart without auth still enforces ---------------------

    def _save(self) -> None:
        if self._path is None:
            return
        doc = {
            "locks": [asdict(lock) for lock in self.locks.locks],
            "locking_mode": self.locks.locking_mode,
            "max_staleness": self.locks.max_staleness,
            "heard": self.heard,
            "refused": self.refused,
        }
        self._saved_heard = self.heard
        try:
            write_private(self._path, json.dumps(doc))
        except OSError as exc:  # a full disk must not stop enforcement in memory
            log.error("cannot save the lock list to %s: %s", self._path, exc)

    def _load(self, path: Path) -> None:
        try:
            doc = json.loads(path.read_text())
            locks = tuple(
                Lock(**{**lock, "target": LockTarget(**lock["target"])}) for lock in doc["locks"]
            )
            mode = doc.get("locking_mode", DEFAULT_LOCKING_MODE)
            self.locks = LockSet(locks, locking_mode=mode, max_staleness=doc["max_staleness"])
            self.heard = float(doc.get("heard", 0.0))
            self.refused = str(doc.get("refused", ""))
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError) as exc:
            # Unreadable: trust nothing it said, and say so (strict clusters refuse all
            # until auth answers, best-effort ones until then know no locks).
            log.error("ignoring unreadable lock list %s: %s", path, exc)
            return
        log.info("loaded %d lock(s) saved at the last contact with auth", len(self.locks.locks))


async def watch_locks(client: Callable[[], AsyncAuthClient], view: LockView) -> None:
    """Follow ``WatchLocks`` until cancelled."""
    from proto.errors import MeziteError, NotAuthenticated
    from proto.locks import lock_set_from_proto
    from proto.v1 import auth_pb2 as pb

    backoff = Backoff(base=0.5, cap=15.0)
    while True:
        current = client()
        try:
            call = current.rpc.WatchLocks(pb.WatchLocksRequest())
            async for message in call:
                view.update(lock_set_from_proto(message))
                backoff.reset()
        except asyncio.CancelledError:
            raise
        except NotAuthenticated as err:
            view.refuse_self(err.message)
        except MeziteError as err:
            log.info("lock stream interrupted: %s", err.message)
        except Exception as exc:
            log.warning("lock stream failed: %s", exc)
        await asyncio.sleep(backoff.next())


async def recheck_forever(check: Callable[[], None]) -> None:
    """Run ``check`` every second: locks lapse and views go stale without a message."""
    while True:
        await asyncio.sleep(RECHECK_INTERVAL)
        try:
            check()
        except Exception:
            log.exception("lock check failed")
