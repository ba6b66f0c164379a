"""One error vocabulary for the whole of Mezite.

    MeziteError
    ├── BadParameter        malformed or out-of-bounds input
    ├── NotAuthenticated    no credentials, bad credentials, expired session
    ├── AccessDenied        authenticated, but not allowed
    ├── NotFound
    ├── AlreadyExists
    ├── CompareFailed       a compare-and-swap or conditional delete lost
    ├── LimitExceeded       rate limits, lockouts surfaced as limits, size caps
    ├── ConnectionProblem   a peer could not be reached
    ├── TrustFailure        a peer's identity did not match the pin or CA we expected
    ├── NotImplementedYet   in the contract, not served yet
    └── Internal            anything unexpected; carries only a request id

Each class is mapped once, here, to a gRPC status name, an HTTP status and a CLI exit
code. Library code raises only these; lower-layer errors are translated at the edges
(``from_grpc_status`` for clients, the server interceptor for servers).
"""

from __future__ import annotations

from typing import ClassVar


class MeziteError(Exception):
    """Base of every error Mezite raises on purpose."""

    grpc_status: ClassVar[str] = "UNKNOWN"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class BadParameter(MeziteError):
    grpc_status = "INVALID_ARGUMENT"
    http_status = 400
    exit_code = 2


class NotAuthenticated(MeziteError):
    grpc_status = "UNAUTHENTICATED"
    http_status = 401
    exit_code = 3


class AccessDenied(MeziteError):
    grpc_status = "PERMISSION_DENIED"
    http_status = 403
    exit_code = 4


class NotFound(MeziteError):
    grpc_status = "NOT_FOUND"
    http_status = 404
    exit_code = 5


class AlreadyExists(MeziteError):
    grpc_status = "ALREADY_EXISTS"
    http_status = 409
    exit_code = 6


class CompareFailed(MeziteError):
    grpc_status = "ABORTED"
    http_status = 412
    exit_code = 7


class LimitExceeded(MeziteError):
    grpc_status = "RESOURCE_EXHAUSTED"
    http_status = 429
    exit_code = 8


class ConnectionProblem(MeziteError):
    grpc_status = "UNAVAILABLE"
    http_status = 503
    exit_code = 9


class TrustFailure(MeziteError):
    grpc_status = "FAILED_PRECONDITION"
    http_status = 495
    exit_code = 10


class NotImplementedYet(MeziteError):
    grpc_status = "UNIMPLEMENTED"
    http_status = 501
    exit_code = 11


class Internal(MeziteError):
    """Something went wrong that the caller cannot fix; the message names a request id
    that the server's log has the details for, and nothing else."""

    grpc_status = "INTERNAL"
    http_status = 500
    exit_code = 1


ALL_ERRORS: tuple[type[MeziteError], ...] = (
    BadParameter,
    NotAuthenticated,
    AccessDenied,
    NotFound,
    AlreadyExists,
    CompareFailed,
    LimitExceeded,
    ConnectionProblem,
    TrustFailure,
    NotImplementedYet,
    Internal,
)

_BY_GRPC_STATUS: dict[str, type[MeziteError]] = {cls.grpc_status: cls for cls in ALL_ERRORS}
_BY_HTTP_STATUS: dict[int, type[MeziteError]] = {cls.http_status: cls for cls in ALL_ERRORS}

# DEADLINE_EXCEEDED and CANCELLED come from the transport, not from our server.
_TRANSPORT_STATUSES: dict[str, type[MeziteError]] = {
    "DEADLINE_EXCEEDED": ConnectionProblem,
    "CANCELLED": ConnectionProblem,
}


def from_grpc_status(status_name: str, message: str) -> MeziteError:
    """Rebuild the error a server raised from the status it sent."""
    cls = _BY_GRPC_STATUS.get(status_name) or _TRANSPORT_STATUSES.get(status_name, Internal)
    return cls(message)


def from_http_status(status: int, message: str) -> MeziteError:
    """Rebuild the error a REST endpoint returned."""
    return _BY_HTTP_STATUS.get(status, Internal)(message)
