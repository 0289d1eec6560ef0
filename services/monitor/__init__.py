"""Following a transparency log from outside (docs/verifiable-log.md)."""
