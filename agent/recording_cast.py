"""The spool's raw frames, and their conversion to asciicast v2.

While a session runs, its recorder only appends frames (the output bytes as the PTY gave
them, with a time and a kind): no decoding, no JSON, so recording costs the session
almost nothing. Once it has ended, this module, run as its own process at low priority
(``python -I recording_cast.py RAW CAST HEADER_JSON``; standard library only, so it
runs from its path), turns the frames into the asciicast v2 file that is uploaded: one
incremental UTF-8 decoder per stream with ``errors="replace"`` (as asciinema's own
writer), output a few milliseconds apart merged into one event, times relative to the
start. A frame cut short by a crash ends the conversion there."""

from __future__ import annotations

import codecs
import json
import os
import struct
import sys
from collections.abc import Iterator
from typing import IO, Any

# <time since start: float64><kind: 1 byte><length: uint32><payload>
FRAME = struct.Struct("<dcI")
OUTPUT, STDERR, RESIZE, MARKER = b"o", b"e", b"r", b"m"
MERGE_SECONDS = 0.005
READ = 1024 * 1024


def frame(at: float, kind: bytes, payload: bytes) -> bytes:
    return FRAME.pack(at, kind, len(payload)) + payload


def frames(raw: IO[bytes]) -> Iterator[tuple[float, bytes, bytes]]:
    """Every whole frame of ``raw`` (a partial last one is left out)."""
    buf = b""
    pos = 0
    while True:
        if len(buf) - pos < FRAME.size or len(buf) - pos < FRAME.size + _length(buf, pos):
            more = raw.read(READ)
            if not more:
                return
            buf = buf[pos:] + more
            pos = 0
            continue
        at, kind, length = FRAME.unpack_from(buf, pos)
        start = pos + FRAME.size
        yield at, kind, buf[start : start + length]
        pos = start + length


def _length(buf: bytes, pos: int) -> int:
    return int(FRAME.unpack_from(buf, pos)[2])


def convert(raw: IO[bytes], out: IO[bytes], header: dict[str, Any]) -> None:
    out.write(json.dumps(header).encode() + b"\n")
    decoders = {
        OUTPUT: codecs.getincrementaldecoder("utf-8")(errors="replace"),
        STDERR: codecs.getincrementaldecoder("utf-8")(errors="replace"),
    }
    text: list[str] = []
    text_at = last_at = 0.0

    def event(at: float, code: str, data: str) -> None:
        out.write(json.dumps([round(at, 6), code, data], ensure_ascii=False).encode() + b"\n")

    def end_text() -> None:
        if text:
            event(text_at, "o", "".join(text))
            text.clear()

    for at, kind, payload in frames(raw):
        if kind in decoders:
            chunk = decoders[kind].decode(payload)
            if not chunk:
                continue
            if text and at - last_at > MERGE_SECONDS:
                end_text()
            if not text:
                text_at = at
            text.append(chunk)
            last_at = at
            continue
        end_text()
        if kind == RESIZE:
            event(at, "r", payload.decode("ascii", "replace"))
        elif kind == MARKER:
            event(at, "m", payload.decode("utf-8", "replace"))
    tail = "".join(d.decode(b"", final=True) for d in decoders.values())
    if tail:
        text.append(tail)
    end_text()


def main(argv: list[str]) -> int:
    raw_path, cast_path, header_json = argv
    os.nice(10)  # after the live sessions
    tmp = cast_path + ".tmp"
    with open(raw_path, "rb") as raw:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            convert(raw, out, json.loads(header_json))
            out.flush()
            os.fsync(out.fileno())
    os.replace(tmp, cast_path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
