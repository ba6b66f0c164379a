"""Command-line front ends: mezctl (operate the cluster), mezd (node agent), mez (users).

Each is a thin typer app: parse, call, render. Heavy modules (grpc, asyncssh,
cryptography) are imported inside the commands that need them, so --help stays fast."""
