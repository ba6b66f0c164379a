"""server.heap.HeapFreezer: what survives a full collection is frozen (later full
collections skip it), refcounting still frees it, and ``reclaim`` collects the cycles
that freezing kept."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from server.heap import HeapFreezer


class Node:
    other: Node | None = None


@pytest.fixture
def heap() -> Iterator[HeapFreezer]:
    freezer = HeapFreezer()
    freezer.install()
    try:
        yield freezer
    finally:
        freezer.uninstall()
        gc.unfreeze()
        gc.collect()


def test_survivors_of_a_full_collection_are_frozen_and_refcounting_frees_them(
    heap: HeapFreezer,
) -> None:
    gc.collect()
    kept = [Node() for _ in range(10_000)]
    before = gc.get_freeze_count()
    gc.collect(1)  # a younger collection freezes nothing
    assert gc.get_freeze_count() == before
    gc.collect()
    frozen = gc.get_freeze_count()
    assert frozen >= before + 10_000
    first = weakref.ref(kept[0])
    del kept
    assert first() is None
    assert gc.get_freeze_count() <= frozen - 10_000


def test_a_cycle_that_was_frozen_is_collected_by_reclaim_only(heap: HeapFreezer) -> None:
    a, b = Node(), Node()
    a.other, b.other = b, a
    ref = weakref.ref(a)
    gc.collect()  # the pair survives, alive: frozen
    del a, b
    gc.collect()
    assert ref() is not None, "a frozen cycle is not walked by later collections"
    assert heap.reclaim() >= 2
    assert ref() is None
    assert gc.get_freeze_count() > 0, "what survived the walk is frozen again"


def test_uninstalled_it_freezes_nothing(heap: HeapFreezer) -> None:
    heap.uninstall()
    gc.unfreeze()
    kept = [Node() for _ in range(1000)]
    gc.collect()
    assert gc.get_freeze_count() == 0
    assert len(kept) == 1000
