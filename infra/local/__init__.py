"""The local plane: the synthesized template stood up on moto, served on 127.0.0.1 (docs/architecture.md)."""
