"""`mez play`'s player: output events in order, pauses divided by the speed and cut at
MAX_IDLE, nothing but output written (resizes and markers are not the terminal's)."""

from __future__ import annotations

import pytest

from cli.mez_recordings import MAX_IDLE, play_cast
from proto.errors import BadParameter

CAST = (
    b'{"version": 2, "width": 80, "height": 24}\n'
    b'[0.5, "o", "hello "]\n'
    b'[0.5, "r", "100x40"]\n'
    b'[1.5, "o", "w\\u00f6rld\\r\\n"]\n'
    b"not json\n"
    b'[30.0, "m", "truncated"]\n'
    b'[31.5, "o", "bye"]\n'
)


def test_output_is_played_in_order_with_scaled_and_capped_pauses() -> None:
    written: list[str] = []
    pauses: list[float] = []
    play_cast(CAST, 2.0, written.append, pauses.append)
    assert "".join(written) == "hello wörld\r\nbye"
    assert pauses == [0.25, 0.5, MAX_IDLE / 2]


def test_what_is_not_a_cast_is_refused() -> None:
    for bad in (b"", b"[1]\n", b'{"version": 1}\n', b"\xff\xfe"):
        with pytest.raises(BadParameter, match="asciicast v2"):
            play_cast(bad, 1.0, print, lambda _: None)
