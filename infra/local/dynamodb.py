"""DynamoDB on moto, made to scale like the real thing where the plane depends on it.

moto snapshots every table a transaction touches with a full ``deepcopy`` so it can roll back: each
ledger append (one transaction) then costs time proportional to the whole ledger. A transaction can only
change the items it names, so here moto's snapshot is the live table itself and an undo log keeps just those
items as they were (and whether their partition existed); a failed transaction is rolled back from the log.
Nothing is copied per partition, so an append costs the same however many partitions the table holds (the
ledger gains one, a record's marker, per record).

moto answers a query on a table's key by sorting every item of the table and keeping the partition's; DynamoDB
reads only that partition, so :class:`PartitionQueries` hands moto's query a view of the one partition.
"""

from __future__ import annotations

import copy
import inspect
import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table

from infra.local import moto_seam

Key = tuple[DynamoType, DynamoType | None]


_ABSENT: Any = object()


@dataclass(frozen=True)
class _Undo:
    """One named item as it was before a transaction: its deep copy (or absent), and whether its partition was."""

    table: Table
    hash_value: DynamoType
    range_value: DynamoType | None
    partition_existed: bool
    prior: Any


def undo_log(table: Table, keys: list[Key]) -> list[_Undo]:
    log = []
    for hash_value, range_value in keys:
        stored = table.items.get(hash_value, _ABSENT)
        if stored is _ABSENT:
            prior = _ABSENT
        elif range_value is None:
            prior = copy.deepcopy(stored)
        else:
            item = stored.get(range_value, _ABSENT) if isinstance(stored, dict) else _ABSENT
            prior = _ABSENT if item is _ABSENT else copy.deepcopy(item)
        log.append(_Undo(table, hash_value, range_value, stored is not _ABSENT, prior))
    return log


def roll_back(log: list[_Undo]) -> None:
    """Put every logged item back as it was, newest entry first (so a key named twice ends as it first was)."""
    for entry in reversed(log):
        items = entry.table.items
        if entry.range_value is None:
            if entry.prior is _ABSENT:
                items.pop(entry.hash_value, None)
            else:
                items[entry.hash_value] = entry.prior
            continue
        partition = items.get(entry.hash_value)
        if entry.prior is not _ABSENT:
            if partition is None:
                partition = items[entry.hash_value] = {}
            partition[entry.range_value] = entry.prior
        elif partition is not None:
            partition.pop(entry.range_value, None)
        if not entry.partition_existed and entry.hash_value in items and not items[entry.hash_value]:
            del items[entry.hash_value]  # the transaction (or a defaultdict read) made it: it was not there


class _TransactionCopy:
    """Stands in for the ``copy`` module inside moto's DynamoDB backend: a table's "snapshot" during a
    transaction is the table itself (the undo log keeps what a rollback needs)."""

    def __init__(self) -> None:
        self.local = threading.local()

    def deepcopy(self, value: Any, memo: Any = None) -> Any:
        if getattr(self.local, "active", False) and isinstance(value, Table):
            return value
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
            log = [entry for name, named in keys.items() for entry in undo_log(backend.tables[name], named)]
            shim.local.active = True
            try:
                original(backend, transact_items)
            except BaseException:
                roll_back(log)
                raise
            finally:
                shim.local.active = False

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
