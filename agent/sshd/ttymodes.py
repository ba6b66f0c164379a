"""The terminal modes a client sends with its PTY request (RFC 4254 section 8), set on
the new terminal as OpenSSH's sshd does, so that the user's erase and interrupt keys
and line settings carry over."""

from __future__ import annotations

import logging
import termios
from collections.abc import Mapping

logger = logging.getLogger(__name__)

# Opcode -> control character index.
_CC: dict[int, str] = {
    1: "VINTR",
    2: "VQUIT",
    3: "VERASE",
    4: "VKILL",
    5: "VEOF",
    6: "VEOL",
    7: "VEOL2",
    8: "VSTART",
    9: "VSTOP",
    10: "VSUSP",
    12: "VREPRINT",
    13: "VWERASE",
    14: "VLNEXT",
    18: "VDISCARD",
}
# Opcode -> (index in the tcgetattr list, flag name).
_IFLAG, _OFLAG, _CFLAG, _LFLAG = 0, 1, 2, 3
_FLAGS: dict[int, tuple[int, str]] = {
    30: (_IFLAG, "IGNPAR"),
    31: (_IFLAG, "PARMRK"),
    32: (_IFLAG, "INPCK"),
    33: (_IFLAG, "ISTRIP"),
    34: (_IFLAG, "INLCR"),
    35: (_IFLAG, "IGNCR"),
    36: (_IFLAG, "ICRNL"),
    37: (_IFLAG, "IUCLC"),
    38: (_IFLAG, "IXON"),
    39: (_IFLAG, "IXANY"),
    40: (_IFLAG, "IXOFF"),
    41: (_IFLAG, "IMAXBEL"),
    42: (_IFLAG, "IUTF8"),
    50: (_LFLAG, "ISIG"),
    51: (_LFLAG, "ICANON"),
    52: (_LFLAG, "XCASE"),
    53: (_LFLAG, "ECHO"),
    54: (_LFLAG, "ECHOE"),
    55: (_LFLAG, "ECHOK"),
    56: (_LFLAG, "ECHONL"),
    57: (_LFLAG, "NOFLSH"),
    58: (_LFLAG, "TOSTOP"),
    59: (_LFLAG, "IEXTEN"),
    60: (_LFLAG, "ECHOCTL"),
    61: (_LFLAG, "ECHOKE"),
    62: (_LFLAG, "PENDIN"),
    70: (_OFLAG, "OPOST"),
    71: (_OFLAG, "OLCUC"),
    72: (_OFLAG, "ONLCR"),
    73: (_OFLAG, "OCRNL"),
    74: (_OFLAG, "ONOCR"),
    75: (_OFLAG, "ONLRET"),
    92: (_CFLAG, "PARENB"),
    93: (_CFLAG, "PARODD"),
}
_CS7, _CS8 = 90, 91
_VDISABLE = 255  # OpenSSH sends 255 for "no character"


def apply_tty_modes(fd: int, modes: Mapping[int, int]) -> None:
    """Set ``modes`` on the terminal ``fd``; unknown opcodes are ignored, as the RFC
    asks. Speeds are left alone: a pseudo-terminal has none."""
    if not modes:
        return
    attrs = termios.tcgetattr(fd)
    cc = attrs[6]
    for opcode, value in modes.items():
        if opcode in _CC:
            index = getattr(termios, _CC[opcode], None)
            if index is not None:
                cc[index] = bytes([0 if value == _VDISABLE else value & 0xFF])
        elif opcode in _FLAGS:
            slot, name = _FLAGS[opcode]
            flag = getattr(termios, name, 0)
            attrs[slot] = attrs[slot] | flag if value else attrs[slot] & ~flag
        elif opcode in (_CS7, _CS8) and value:
            attrs[_CFLAG] = (attrs[_CFLAG] & ~termios.CSIZE) | (
                termios.CS7 if opcode == _CS7 else termios.CS8
            )
    try:
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except termios.error as exc:
        logger.info("could not apply the client's terminal modes: %s", exc)
