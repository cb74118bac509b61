"""The documents bucket as a port: bytes by key (claim-checked requests, documents, llm turns' content).

Production is :class:`functions.runtime.adapters.S3DocumentStore`; tests and benchmarks use the in-memory one.
"""

from __future__ import annotations

from typing import Protocol


class DocumentStore(Protocol):
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
