"""DynamoDB on moto, made to scale like the real thing where the plane depends on it.

moto snapshots every table a transaction touches with a full ``deepcopy`` so it can roll back: each
ledger append (one transaction) then costs time proportional to the whole ledger. A transaction can only
change the items it names, so the snapshot here shares untouched items and copies just those.

moto answers a query on a table's key by sorting every item of the table and keeping the partition's; DynamoDB
reads only that partition, so :class:`PartitionQueries` hands moto's query a view of the one partition.
"""

from __future__ import annotations

import copy
import inspect
import threading
from collections import defaultdict
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

from infra.local import moto_seam

Key = tuple[DynamoType, DynamoType | None]


def snapshot(table: Table, keys: list[Key]) -> Table:
    """A copy of ``table`` as far as a transaction on ``keys`` can tell: the partition map copied, the named
    partitions' item maps copied and their named items deep-copied; every other partition shared."""
    clone = copy.copy(table)
    items: defaultdict[Any, Any] = defaultdict(dict, table.items)
    for hash_value, range_value in keys:
        if hash_value not in items:
            continue
        stored = table.items[hash_value]
        if isinstance(stored, dict):
            if items[hash_value] is stored:
                items[hash_value] = dict(stored)
            if range_value is not None and range_value in stored:
                items[hash_value][range_value] = copy.deepcopy(stored[range_value])
        elif range_value is None:
            items[hash_value] = copy.deepcopy(stored)
    clone.items = items
    return clone


class _TransactionCopy:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend, for table snapshots only."""

    def __init__(self) -> None:
        self.local = threading.local()

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        keys: dict[str, list[Key]] | None = getattr(self.local, "keys", None)
        if keys is not None and isinstance(value, Table):
            return snapshot(value, keys.get(value.name, []))
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


class LeanTransactions:
    def __init__(self) -> None:
        self._shim = _TransactionCopy()
        self._patches = moto_seam.Patches()

    def install(self) -> None:
        shim = self._shim
        original = moto_seam.original("dynamodb.transact_write_items")

        def transact_write_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
            keys: dict[str, list[Key]] = {}
            for entry in transact_items:
                kind, operation = next(iter(entry.items()))
                table = backend.tables.get(operation.get("TableName", ""))
                if table is None:
                    continue
                attributes = operation["Item"] if kind == "Put" else operation.get("Key", {})
                if table.hash_key_attr not in attributes:
                    continue
                hash_value = DynamoType(attributes[table.hash_key_attr])
                range_attr = table.range_key_attr
                range_value = DynamoType(attributes[range_attr]) if range_attr and range_attr in attributes else None
                keys.setdefault(table.name, []).append((hash_value, range_value))
            shim.local.keys = keys
            try:
                original(backend, transact_items)
            finally:
                shim.local.keys = None

        self._patches.apply("dynamodb.transact_write_items", transact_write_items)
        self._patches.apply("dynamodb.copy", shim)

    def uninstall(self) -> None:
        self._patches.restore()


class PartitionQueries:
    """A query on a table's own key reads only the queried partition."""

    def __init__(self) -> None:
        self._patches = moto_seam.Patches()

    def install(self) -> None:
        original = moto_seam.original("dynamodb.query")
        signature = inspect.signature(original)  # moto's backend passes index_name positionally

        def query(table: Table, hash_key: DynamoType | None, *args: Any, **kwargs: Any) -> Any:
            named = signature.bind(table, hash_key, *args, **kwargs).arguments
            if named.get("index_name") is not None or hash_key is None:
                return original(table, hash_key, *args, **kwargs)
            view = copy.copy(table)  # the table's settings, and only the queried partition's items
            view.items = defaultdict(dict)
            if hash_key in table.items:
                view.items[hash_key] = table.items[hash_key]
            return original(view, hash_key, *args, **kwargs)

        self._patches.apply("dynamodb.query", query)

    def uninstall(self) -> None:
        self._patches.restore()
