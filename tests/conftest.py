"""Fixtures shared by every kind of test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import PostgresServer, postgres_server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session; tests take a schema each."""
    with postgres_server() as server:
        yield server
