"""Mezite benchmarks against OpenSSH and raw crypto on loopback; see bench/README.md."""
