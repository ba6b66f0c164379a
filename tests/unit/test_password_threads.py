"""Password hashing runs on threads of its own, one per core, below the event loop's
scheduling priority (so that a login storm leaves the loop the CPU it needs), and a hash
still verifies the way it did."""

from __future__ import annotations

import os
import threading

from server.auth.crypto import passwords

PASSWORD = "a long enough password"


def hashing_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("argon2")]


async def test_hashing_threads_run_below_the_loop_and_hashes_verify() -> None:
    stored = await passwords.hash_password(PASSWORD)
    assert await passwords.verify_password(stored, PASSWORD)
    assert not await passwords.verify_password(stored, PASSWORD + "!")
    assert not await passwords.verify_password(None, PASSWORD)
    threads = hashing_threads()
    assert 1 <= len(threads) <= (os.cpu_count() or 1)
    loop_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    for thread in threads:
        assert thread.native_id is not None
        nice = os.getpriority(os.PRIO_PROCESS, thread.native_id)
        assert nice == min(19, loop_nice + passwords.HASHING_NICE), thread.name
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == loop_nice
