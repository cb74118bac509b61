"""Where the ledger lives: one DynamoDB table holding chain heads, entries, record markers and the digest cursor;
signed digests in an S3 bucket (Object Lock), signed by a KMS key.

Item layout (partition ``chain_id``, sort ``seq``):
- entry ``(chain-07, n)``: ``record_id``, ``trace_id``, ``entry_hash``, ``prev_hash``, ``appended_at``, ``canonical``;
- head ``(chain-07, 0)``: ``head_seq``, ``head_hash``;
- record marker ``(record#<record_id>, 0)``: which entry holds the record, so a redelivery adds nothing;
- digest cursor ``(digest-cursor, 0)``: the last digest's seq and hash and the entries it covered.

An append is one transaction: move the head from the seq the appender read (condition), put the entry
(must not exist) and the record marker (must not exist). Two appenders racing on a head: one wins, the
other re-reads and appends after it. The chain never forks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Protocol

from functions.runtime.adapters import client
from functions.runtime.ledger import GENESIS_HASH, LedgerEntry, SignedDigest, chain_ids

AppendOutcome = Literal["appended", "duplicate", "conflict"]
CURSOR_KEY = "digest-cursor"


@dataclass(frozen=True)
class Head:
    seq: int
    entry_hash: str


@dataclass(frozen=True)
class DigestCursor:
    seq: int = 0
    digest_hash: str = GENESIS_HASH
    covered: dict[str, int] = field(default_factory=dict)  # chain -> last seq covered by a digest


class LedgerStore(Protocol):
    def head(self, chain_id: str) -> Head: ...

    def append(self, entry: LedgerEntry, *, trace_id: str, expected_head_seq: int) -> AppendOutcome: ...

    def chains(self) -> dict[str, Head]: ...

    def entries(self, chain_id: str, *, after_seq: int = 0, until_seq: int | None = None) -> list[LedgerEntry]: ...

    def entries_for_trace(self, trace_id: str) -> list[LedgerEntry]: ...

    def cursor(self) -> DigestCursor: ...

    def advance_cursor(self, previous: DigestCursor, new: DigestCursor) -> bool: ...


def _entry(item: dict[str, Any]) -> LedgerEntry:
    fields = json.loads(item["canonical"])
    return LedgerEntry(**fields, entry_hash=item["entry_hash"], canonical=item["canonical"])


class InMemoryLedgerStore:
    """Twin of the DynamoDB store for tests."""

    def __init__(self) -> None:
        self.items: dict[str, dict[int, LedgerEntry]] = {}
        self.traces: dict[str, str] = {}
        self.heads: dict[str, Head] = {}
        self.markers: set[str] = set()
        self._cursor = DigestCursor()

    def head(self, chain_id: str) -> Head:
        return self.heads.get(chain_id, Head(0, GENESIS_HASH))

    def append(self, entry: LedgerEntry, *, trace_id: str, expected_head_seq: int) -> AppendOutcome:
        if entry.record_id in self.markers:
            return "duplicate"
        if self.head(entry.chain_id).seq != expected_head_seq:
            return "conflict"
        self.items.setdefault(entry.chain_id, {})[entry.seq] = entry
        self.traces[entry.record_id] = trace_id
        self.heads[entry.chain_id] = Head(entry.seq, entry.entry_hash)
        self.markers.add(entry.record_id)
        return "appended"

    def chains(self) -> dict[str, Head]:
        return dict(sorted(self.heads.items()))

    def entries(self, chain_id: str, *, after_seq: int = 0, until_seq: int | None = None) -> list[LedgerEntry]:
        last = until_seq if until_seq is not None else float("inf")
        return [e for s, e in sorted(self.items.get(chain_id, {}).items()) if after_seq < s <= last]

    def entries_for_trace(self, trace_id: str) -> list[LedgerEntry]:
        found = [e for chain in self.items.values() for e in chain.values() if self.traces[e.record_id] == trace_id]
        return sorted(found, key=lambda e: (e.appended_at, e.chain_id, e.seq))

    def cursor(self) -> DigestCursor:
        return self._cursor

    def advance_cursor(self, previous: DigestCursor, new: DigestCursor) -> bool:
        if self._cursor.seq != previous.seq:
            return False
        self._cursor = new
        return True


class DynamoLedgerStore:
    def __init__(self, table: Any, *, trace_index: str = "ByTrace") -> None:
        self._table = table
        self._client = table.meta.client
        self._trace_index = trace_index

    def head(self, chain_id: str) -> Head:
        item = self._table.get_item(Key={"chain_id": chain_id, "seq": 0}, ConsistentRead=True).get("Item")
        return Head(0, GENESIS_HASH) if item is None else Head(int(item["head_seq"]), str(item["head_hash"]))

    def append(self, entry: LedgerEntry, *, trace_id: str, expected_head_seq: int) -> AppendOutcome:
        # The table resource's client serialises plain Python values; typed {"S": ...} maps would be wrapped again.
        name = self._table.name
        head_condition = "attribute_not_exists(chain_id)" if expected_head_seq == 0 else "head_seq = :expected"
        head_values: dict[str, Any] = {":seq": entry.seq, ":hash": entry.entry_hash}
        if expected_head_seq:
            head_values[":expected"] = expected_head_seq
        marker = {
            "chain_id": f"record#{entry.record_id}",
            "seq": 0,
            "entry_chain": entry.chain_id,
            "entry_seq": entry.seq,
        }
        item = {
            "chain_id": entry.chain_id,
            "seq": entry.seq,
            "record_id": entry.record_id,
            "trace_id": trace_id,
            "entry_hash": entry.entry_hash,
            "prev_hash": entry.prev_hash,
            "appended_at": entry.appended_at,
            "canonical": entry.canonical,
        }
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": name,
                            "Item": marker,
                            "ConditionExpression": "attribute_not_exists(chain_id)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": name,
                            "Key": {"chain_id": entry.chain_id, "seq": 0},
                            "UpdateExpression": "SET head_seq = :seq, head_hash = :hash",
                            "ConditionExpression": head_condition,
                            "ExpressionAttributeValues": head_values,
                        }
                    },
                    {"Put": {"TableName": name, "Item": item, "ConditionExpression": "attribute_not_exists(chain_id)"}},
                ]
            )
        except self._client.exceptions.TransactionCanceledException as cancelled:
            reasons = [r.get("Code") for r in cancelled.response.get("CancellationReasons", [])]
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return "duplicate"
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                return "conflict"
            raise
        return "appended"

    def _query(self, **kwargs: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        while True:
            page = self._table.query(**kwargs)
            items.extend(page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def chains(self) -> dict[str, Head]:
        """Heads of the chains that have entries: one read per possible chain, never a scan of the ledger."""
        heads = {chain_id: self.head(chain_id) for chain_id in chain_ids()}
        return {chain_id: head for chain_id, head in heads.items() if head.seq > 0}

    def entries(self, chain_id: str, *, after_seq: int = 0, until_seq: int | None = None) -> list[LedgerEntry]:
        last = until_seq if until_seq is not None else 2**63 - 1
        items = self._query(
            KeyConditionExpression="chain_id = :c AND seq BETWEEN :first AND :last",
            ExpressionAttributeValues={":c": chain_id, ":first": after_seq + 1, ":last": last},
            ConsistentRead=True,
        )
        return [_entry(item) for item in items]

    def entries_for_trace(self, trace_id: str) -> list[LedgerEntry]:
        items = self._query(
            IndexName=self._trace_index,
            KeyConditionExpression="trace_id = :t",
            ExpressionAttributeValues={":t": trace_id},
        )
        return sorted((_entry(item) for item in items), key=lambda e: (e.appended_at, e.chain_id, e.seq))

    def cursor(self) -> DigestCursor:
        item = self._table.get_item(Key={"chain_id": CURSOR_KEY, "seq": 0}, ConsistentRead=True).get("Item")
        if item is None:
            return DigestCursor()
        return DigestCursor(
            seq=int(item["digest_seq"]),
            digest_hash=str(item["digest_hash"]),
            covered={k: int(v) for k, v in item.get("covered", {}).items()},
        )

    def advance_cursor(self, previous: DigestCursor, new: DigestCursor) -> bool:
        condition = "attribute_not_exists(chain_id)" if previous.seq == 0 else "digest_seq = :previous"
        values: dict[str, Any] = {":seq": new.seq, ":hash": new.digest_hash, ":covered": new.covered}
        if previous.seq:
            values[":previous"] = previous.seq
        try:
            self._table.update_item(
                Key={"chain_id": CURSOR_KEY, "seq": 0},
                UpdateExpression="SET digest_seq = :seq, digest_hash = :hash, covered = :covered",
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True


class DigestExistsError(FileExistsError):
    """A digest number is written once; a second write is refused."""


class DigestArchive(Protocol):
    def put(self, digest: SignedDigest) -> None:
        """Write once; refuse to overwrite an existing digest."""
        ...

    def get(self, seq: int) -> SignedDigest: ...

    def all(self) -> list[SignedDigest]: ...


class InMemoryDigestArchive:
    def __init__(self) -> None:
        self.digests: dict[int, SignedDigest] = {}

    def put(self, digest: SignedDigest) -> None:
        if digest.body.seq in self.digests:
            raise DigestExistsError(f"digest {digest.body.seq} exists")
        self.digests[digest.body.seq] = digest

    def get(self, seq: int) -> SignedDigest:
        return self.digests[seq]

    def all(self) -> list[SignedDigest]:
        return [self.digests[s] for s in sorted(self.digests)]


KMS_RAW_MESSAGE_LIMIT = 4096  # bytes KMS Sign accepts as a RAW message


class KmsSigner:
    """ECDSA P-256 with SHA-256 on an asymmetric KMS key; the private key never leaves KMS."""

    def __init__(self, key_id: str) -> None:
        self.key_id = key_id

    def sign(self, message: bytes) -> bytes:
        if len(message) > KMS_RAW_MESSAGE_LIMIT:
            raise ValueError(f"digest body is {len(message)} bytes; KMS signs at most {KMS_RAW_MESSAGE_LIMIT} raw")
        signature: bytes = client("kms").sign(
            KeyId=self.key_id, Message=message, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"
        )["Signature"]
        return signature

    @cached_property
    def _public_pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        der = client("kms").get_public_key(KeyId=self.key_id)["PublicKey"]
        key = serialization.load_der_public_key(der)
        return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def public_key_pem(self) -> str:
        return self._public_pem


def digest_key(seq: int) -> str:
    return f"digests/{seq:012d}.json"


class S3DigestArchive:
    def __init__(self, bucket: str) -> None:
        self.bucket = bucket

    def put(self, digest: SignedDigest) -> None:
        # IfNoneMatch: a digest is written once; Object Lock keeps it from being deleted or overwritten.
        s3 = client("s3")
        try:
            s3.put_object(
                Bucket=self.bucket,
                Key=digest_key(digest.body.seq),
                Body=digest.model_dump_json().encode(),
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except s3.exceptions.ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise DigestExistsError(f"digest {digest.body.seq} exists") from None
            raise

    def get(self, seq: int) -> SignedDigest:
        body = client("s3").get_object(Bucket=self.bucket, Key=digest_key(seq))["Body"].read()
        return SignedDigest.model_validate_json(body)

    def all(self) -> list[SignedDigest]:
        keys: list[str] = []
        paginator = client("s3").get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix="digests/"):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return [self.get(int(key.removeprefix("digests/").removesuffix(".json"))) for key in sorted(keys)]
