"""Where intake keeps documents (claim-check): a port, and the in-memory twin tests use."""

from __future__ import annotations

from typing import Protocol


class DocumentStore(Protocol):
    """Bytes by key; production is an S3 bucket."""

    def put(self, key: str, body: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...


class InMemoryDocumentStore:
    """Dictionary-backed :class:`DocumentStore`; a missing key raises ``KeyError`` like a missing object."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, body: bytes) -> None:
        self.objects[key] = body

    def get(self, key: str) -> bytes:
        return self.objects[key]
