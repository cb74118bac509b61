"""The local plane's state dir, made durable: what a restarted plane (graceful stop or ``kill -9``) resumes.

Every change the plane's emulated account makes to what matters is one JSON line in ``<state>/state/journal.jsonl``,
written to the OS inside the call that made it, so before the plane answers the request: DynamoDB items (their
image after the write, with the stream records the write produced), S3 objects (the bytes under
``state/blobs/<sha256>``), SQS messages (sent, moved, deleted), bus events accepted and not yet delivered,
accepted Step Functions runs (name, state machine, input) and how they ended, stream records delivered to their
consumer, KMS key material and API key values.
The lines are state images, so replaying one twice changes nothing. A plane starting on the dir reads the newest
snapshot and the journal after it, then writes them as one snapshot (a temp file, synced, renamed) and starts a new
journal. Lines reach the OS with one ``write`` each but are not synced one by one (about 1 ms each on a laptop
disk): the plane's process dying loses nothing, the machine crashing may lose the newest lines.

The restore puts items, objects and messages back into moto's backends as each resource is provisioned, without
firing streams; stream records that had not been delivered are delivered again (as an event source mapping resumes
from its checkpoint), and so are bus events; runs that had not ended are started again from their input
(``resume_runs``).

moto internals patched here, through ``infra/local/moto_seam.py`` and put back on ``uninstall``: DynamoDB backend
writes, ``S3Backend.put_object``/``delete_object``, SQS ``Queue.add_message``/``delete_message``,
``StepFunctionsParserBackend.start_execution`` and the execution worker's ``terminated``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.kms.models import kms_backends
from moto.s3.models import S3Backend, s3_backends
from moto.sqs.models import Message, Queue, sqs_backends
from moto.stepfunctions.exceptions import ExecutionDoesNotExist
from moto.stepfunctions.parser.api import ExecutionStatus, GetExecutionHistoryOutput, StateMachineType
from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication, Execution
from moto.stepfunctions.parser.models import StepFunctionsParserBackend, stepfunctions_parser_backends

from infra.local import moto_seam
from infra.local.events import EventDelivery
from infra.local.streams import Record, StreamDelivery
from infra.local.template import ACCOUNT_ID, REGION, Physical

FORMAT = 1  # bump when a line's meaning changes: a plane refuses a dir written in another format
STATE = "state"
TERMINAL = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
RESUMED = "RESUMED"  # a run started again under a linked name after a restart


class CannotRestore(Exception):
    """The state dir holds state this plane cannot take back (another format, a corrupt journal, in use)."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _json(value: Any) -> str:
    def encode(obj: Any) -> Any:
        if isinstance(obj, bytes):
            return {"__b64__": base64.b64encode(obj).decode()}
        if isinstance(obj, dt.datetime):
            return obj.isoformat()
        raise TypeError(f"cannot journal {type(obj).__name__}")

    return json.dumps(value, separators=(",", ":"), default=encode)


def _unbytes(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__b64__"}:
            return base64.b64decode(value["__b64__"])
        return {k: _unbytes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unbytes(v) for v in value]
    return value


@dataclass
class Saved:
    """What a state dir holds, as the journal's lines build it up (each line is an image: last one wins)."""

    items: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # table -> key -> attributes
    objects: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # "bucket/key" -> put id -> put
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)  # message id -> message (and its queue)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # execution ARN -> start, and end once ended
    stream: dict[str, dict[str, Any]] = field(default_factory=dict)  # "function|eventID" -> undelivered record
    stream_seq: dict[str, int] = field(default_factory=dict)  # table -> highest sequence number handed out
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # bus event accepted, not yet delivered
    kms: dict[str, dict[str, Any]] = field(default_factory=dict)  # logical id -> key id, ARN, material
    api_keys: dict[str, str] = field(default_factory=dict)  # API key id -> value

    def apply(self, line: dict[str, Any]) -> None:
        for table, key, attributes in line.get("ddb", ()):
            if attributes is None:
                self.items.get(table, {}).pop(key, None)
            else:
                self.items.setdefault(table, {})[key] = attributes
        for function, record in line.get("stream", ()):
            self.stream[f"{function}|{record['eventID']}"] = {"function": function, "record": record}
            table = record["eventSourceARN"].split(":table/", 1)[-1].split("/", 1)[0]
            seq = int(record["dynamodb"]["SequenceNumber"])
            self.stream_seq[table] = max(seq, self.stream_seq.get(table, 0))
        for function, event_id in line.get("done", ()):
            self.stream.pop(f"{function}|{event_id}", None)
        if "event" in line:
            self.events[line["event"]["id"]] = line["event"]
        for delivery_id in line.get("event_done", ()):
            self.events.pop(delivery_id, None)
        if "s3" in line:
            put = line["s3"]
            versions = self.objects.setdefault(f"{put['bucket']}/{put['key']}", {})
            if not put.get("versioned"):
                versions.clear()
            versions[put["id"]] = put
        if "s3del" in line:
            self.objects.pop("/".join(line["s3del"]), None)
        if "sqs" in line:
            self.messages[line["sqs"]["id"]] = line["sqs"]
        for message_id in line.get("sqsdel", ()):
            self.messages.pop(message_id, None)
        if "run" in line:
            self.runs.setdefault(line["run"]["arn"], {}).update(line["run"])
        if "end" in line:
            self.runs.setdefault(line["end"]["arn"], {}).update(line["end"])
        self.kms.update(line.get("kms", {}))
        self.api_keys.update(line.get("api_keys", {}))

    def open_runs(self) -> list[dict[str, Any]]:
        """Accepted runs with no outcome: their interpreter died with the previous plane."""
        return sorted(
            (r for r in self.runs.values() if "status" not in r and "input" in r), key=lambda r: str(r["started"])
        )

    def empty(self) -> bool:
        return not (self.items or self.objects or self.messages or self.runs or self.kms or self.api_keys)


@dataclass
class Restored:
    """What a plane took back from its state dir: the banner and the log say it."""

    restored: bool = False
    items: int = 0
    objects: int = 0
    messages: int = 0
    runs_ended: int = 0
    runs_resumed: list[str] = field(default_factory=list)  # execution ids started again
    not_resumed: list[str] = field(default_factory=list)  # runs whose workflow could not be started
    stream_redelivered: int = 0
    events_redelivered: int = 0
    markers_released: int = 0  # idempotency markers of invocations that died with the previous plane
    dropped_tail: str | None = None  # a torn last journal line, dropped

    def line(self) -> str:
        if not self.restored:
            return "new state dir: nothing to restore"
        text = (
            f"restored the state dir: {self.items} items, {self.objects} objects, {self.messages} messages, "
            f"{self.runs_ended} ended runs; resumed {len(self.runs_resumed)} runs; "
            f"{self.stream_redelivered} stream records and {self.events_redelivered} bus events to redeliver, "
            f"{self.markers_released} in-progress idempotency markers released"
        )
        if self.not_resumed:
            text += f"; could not resume {', '.join(self.not_resumed)}"
        return text + (f"; {self.dropped_tail}" if self.dropped_tail else "")


def read_journal(path: Path, saved: Saved) -> str | None:
    """Apply each whole line of the journal; a torn last line (the plane killed mid-write) is dropped and named."""
    if not path.exists():
        return None
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines.pop()  # what follows the last newline: empty unless the last write was cut short
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            if number == len(lines) and not torn:
                return f"dropped a torn journal line {number}"  # cut short at its end, newline and all
            raise CannotRestore(f"journal line {number} of {path} is corrupt") from None
        if number == 1 and "format" in line:
            if line["format"] != FORMAT:
                raise CannotRestore(f"its journal is format {line['format']}, this plane reads format {FORMAT}")
            continue
        saved.apply(_unbytes(line))
    if torn.strip():
        try:
            saved.apply(_unbytes(json.loads(torn)))
        except ValueError:
            return f"dropped a torn journal line {len(lines) + 1} ({len(torn)} bytes)"
    return None


def _write_atomically(path: Path, text: str) -> None:
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        Path(name).replace(path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


class Journal:
    """Append-only JSON lines; each line is one ``write`` on an O_APPEND descriptor (whole, or torn at the end)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._lock = threading.Lock()

    def append(self, line: dict[str, Any]) -> None:
        data = (_json(line) + "\n").encode()
        with self._lock:
            if self._fd < 0:
                return  # the plane is stopping: nothing after its stop is its state
            os.write(self._fd, data)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def _item_key(hash_value: dict[str, Any], range_value: dict[str, Any] | None) -> str:
    return json.dumps([hash_value, range_value], sort_keys=True, separators=(",", ":"))


class StateDir:
    """The durable part of one plane's state dir: opened (and locked) at start, closed at stop."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / STATE
        self.saved = Saved()
        self.summary = Restored()
        self.journal: Journal | None = None
        self._lock_file: IO[str] | None = None
        self._originals: dict[str, Any] = {}
        self._patches = moto_seam.Patches()
        self._ddb_lock = threading.RLock()
        self._s3_lock = threading.Lock()
        self._sqs_lock = threading.Lock()
        self._op = threading.local()
        self._runs_seen: set[str] = set()
        self.deliver: Callable[[str, Record], None] = lambda function_arn, record: None  # the plane's streams

    # --- open: lock, read, compact ----------------------------------------------------------------

    @staticmethod
    def holds_state(state_dir: Path) -> bool:
        return (state_dir / STATE / "format.json").is_file()

    def open(self) -> StateDir:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "blobs").mkdir(exist_ok=True)
        self._lock_file = (self.root / "lock").open("a")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            self._lock_file = None
            raise CannotRestore("another local plane is serving it") from None
        try:
            self._read()
        except BaseException:
            self.close()
            raise
        # One snapshot of all of it, then a new journal: a crash between the two replays lines already applied.
        _write_atomically(self.root / "snapshot.json", _json(self._snapshot()))
        _write_atomically(self.root / "format.json", json.dumps({"format": FORMAT}) + "\n")
        journal = self.root / "journal.jsonl"
        journal.write_text(json.dumps({"format": FORMAT}) + "\n")
        self.journal = Journal(journal)
        return self

    def _read(self) -> None:
        format_file = self.root / "format.json"
        if format_file.is_file():
            try:
                found = json.loads(format_file.read_text()).get("format")
            except ValueError:
                raise CannotRestore(f"{format_file} is corrupt") from None
            if found != FORMAT:
                raise CannotRestore(f"it was written in state format {found}, this plane reads format {FORMAT}")
        snapshot = self.root / "snapshot.json"
        if snapshot.is_file():
            try:
                document = _unbytes(json.loads(snapshot.read_text()))
            except ValueError:
                raise CannotRestore(f"{snapshot} is corrupt") from None
            if document.get("format") != FORMAT:
                raise CannotRestore(f"its snapshot is format {document.get('format')}, this plane reads {FORMAT}")
            fields = {k: v for k, v in document.items() if k != "format"}
            unknown = sorted(set(fields) - set(Saved.__dataclass_fields__))
            if unknown:
                raise CannotRestore(f"its snapshot holds {', '.join(unknown)}, which this plane does not know")
            self.saved = Saved(**fields)
        self.summary.dropped_tail = read_journal(self.root / "journal.jsonl", self.saved)
        self.summary.restored = not self.saved.empty()

    def _snapshot(self) -> dict[str, Any]:
        return {"format": FORMAT, **self.saved.__dict__}

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()
            self.journal = None
        if self._lock_file is not None:
            self._lock_file.close()  # releases the lock
            self._lock_file = None

    def _append(self, line: dict[str, Any]) -> None:
        if self.journal is not None:
            self.journal.append(line)

    # --- provisioning: each resource gets back what it held ---------------------------------------

    def provisioned(self, logical_id: str, kind: str, physical: Physical, api_keys: dict[str, str]) -> Physical:
        """Called as each resource is created: restore its contents (or record what a later restart needs)."""
        if kind == "AWS::KMS::Key":
            return self._kms_key(logical_id, physical)
        if kind == "AWS::DynamoDB::Table":
            self._restore_items(physical.ref)
        elif kind == "AWS::S3::Bucket":
            self._restore_objects(physical.ref)
        elif kind == "AWS::SQS::Queue":
            self._restore_messages(str(physical.attributes.get("QueueName", "")))
        elif kind == "AWS::ApiGateway::ApiKey":
            key_id = physical.ref
            if key_id in self.saved.api_keys:
                api_keys[key_id] = self.saved.api_keys[key_id]  # callers keep the x-api-key they hold
            else:
                self._append({"api_keys": {key_id: api_keys[key_id]}})
        return physical

    def _kms_key(self, logical_id: str, physical: Physical) -> Physical:
        """The same key id and material as before, so signatures made before the restart still verify."""
        backend = kms_backends[ACCOUNT_ID][REGION]
        key = backend.keys[physical.ref]
        wrapper: Any = key.private_key  # moto's RSA/ECDSA wrappers hold the cryptography key as .private_key
        saved = self.saved.kms.get(logical_id)
        if saved is None:
            record = {
                "id": key.id,
                "arn": key.arn,
                "material": key.key_material,
                "private_pem": wrapper.private_key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                ).decode(),
            }
            self.saved.kms[logical_id] = record
            self._append({"kms": {logical_id: record}})
            return physical
        del backend.keys[key.id]
        key.id, key.arn, key.key_material = saved["id"], saved["arn"], saved["material"]
        wrapper.private_key = serialization.load_pem_private_key(saved["private_pem"].encode(), None)
        backend.keys[key.id] = key
        attributes = {**physical.attributes, "Arn": key.arn, "KeyId": key.id}
        return Physical(ref=key.id, attributes=attributes)

    def _restore_items(self, table_name: str) -> None:
        saved = self.saved.items.get(table_name)
        table = dynamodb_backends[ACCOUNT_ID][REGION].tables[table_name]
        for attributes in (saved or {}).values():
            hash_value = DynamoType(attributes[table.hash_key_attr])
            range_value = DynamoType(attributes[table.range_key_attr]) if table.range_key_attr else None
            item = Item(hash_value, range_value, attributes)
            if range_value is not None:
                table.items[hash_value][range_value] = item
            else:
                table.items[hash_value] = item  # type: ignore[assignment]
            self.summary.items += 1
        if table.stream_shard is not None and table_name in self.saved.stream_seq:
            # New records follow the old ones: a batch mixing redelivered and new records names each once.
            table.stream_shard.starting_sequence_number = self.saved.stream_seq[table_name] + 1

    def _restore_objects(self, bucket_name: str) -> None:
        backend = s3_backends[ACCOUNT_ID]["global"]
        put_object = self._originals.get("s3_put", S3Backend.put_object)
        for name, versions in self.saved.objects.items():
            if not name.startswith(f"{bucket_name}/"):
                continue
            for put in versions.values():
                value = (self.root / "blobs" / put["blob"]).read_bytes()
                put_object(backend, bucket_name, put["key"], value, **put["args"], disable_notification=True)
                self.summary.objects += 1

    def _restore_messages(self, queue_name: str) -> None:
        queue = sqs_backends[ACCOUNT_ID][REGION].queues.get(queue_name)
        if queue is None:
            return
        add = self._originals.get("sqs_add", Queue.add_message)
        for saved in self.saved.messages.values():
            if saved["queue"] != queue_name:
                continue
            message = Message(saved["id"], saved["body"])
            message.message_attributes = saved.get("attributes") or {}
            message.group_id = saved.get("group_id")
            message.deduplication_id = saved.get("deduplication_id")
            message.mark_sent()
            add(queue, message)
            self.summary.messages += 1

    def restore_ended_runs(self) -> None:
        """Ended runs answer DescribeExecution as they ended; their history before the restart is gone."""
        backend = stepfunctions_parser_backends[ACCOUNT_ID][REGION]
        for run in self.saved.runs.values():
            if run.get("status") not in TERMINAL or "input" not in run:
                continue
            try:
                machine = backend._get_state_machine_for_execution(run["arn"])
            except ExecutionDoesNotExist:
                continue  # the template no longer has its workflow
            restored = _RestoredExecution(
                name=run["name"],
                sm_type=StateMachineType.STANDARD,
                role_arn=machine.roleArn,
                exec_arn=run["arn"],
                account_id=ACCOUNT_ID,
                region_name=REGION,
                state_machine=machine,
                start_date=dt.datetime.fromisoformat(run["started"]),
                cloud_watch_logging_session=None,
                activity_store={},
                input_data=run["input"],
                trace_header=run.get("trace_header"),
            )
            restored.exec_status = ExecutionStatus(run["status"])
            restored.stop_date = dt.datetime.fromisoformat(run["stopped"]) if run.get("stopped") else None
            restored.output = json.loads(run["output"]) if run.get("output") else None
            restored.error, restored.cause = run.get("error"), run.get("cause")
            executions: list[Any] = machine.executions  # the parser's executions, typed as moto's older model
            executions.append(restored)
            self._runs_seen.add(run["arn"])
            self.summary.runs_ended += 1

    def undelivered(self) -> list[tuple[str, Record]]:
        return [(entry["function"], entry["record"]) for entry in self.saved.stream.values()]

    def undelivered_events(self) -> list[dict[str, Any]]:
        return list(self.saved.events.values())

    def resumed(self, old_arn: str, new_arn: str) -> None:
        self._append({"end": {"arn": old_arn, "status": RESUMED, "resumed_as": new_arn, "stopped": _now()}})

    # --- while serving: journal every change ------------------------------------------------------

    def install(self) -> None:
        self._install_dynamodb()
        self._install_s3()
        self._install_sqs()
        self._install_stepfunctions()

    def uninstall(self) -> None:
        self._patches.restore()
        self._originals.clear()

    _SEAM = {
        "ddb_put": "dynamodb.put_item",
        "ddb_update": "dynamodb.update_item",
        "ddb_delete": "dynamodb.delete_item",
        "ddb_transact": "dynamodb.transact_write_items",
        "s3_put": "s3.put_object",
        "s3_delete": "s3.delete_object",
        "sqs_add": "sqs.add_message",
        "sqs_delete": "sqs.delete_message",
        "sfn_start": "stepfunctions.start_execution",
        "sfn_end": "stepfunctions.execution_terminated",
    }

    def _patch(self, name: str, wrapper: Callable[..., Any]) -> None:
        seam = self._SEAM[name]
        self._originals[name] = moto_seam.original(seam)
        self._patches.apply(seam, wrapper)

    @contextlib.contextmanager
    def _dynamodb_write(self, backend: DynamoDBBackend, touched: list[tuple[str, dict[str, Any]]]) -> Iterator[None]:
        """Serialise writes, then journal the written items' images and their stream records as one line."""
        with self._ddb_lock:
            outer = getattr(self._op, "keys", None) is None
            if outer:
                self._op.keys, self._op.stream = [], []
            self._op.keys.extend(touched)
            written = False
            try:
                yield
                written = True
            finally:
                if outer:
                    keys, stream = self._op.keys, self._op.stream
                    self._op.keys = self._op.stream = None
                    # A refused write (a failed condition, a cancelled transaction) changed no item.
                    images = [self._image(backend, t, k) for t, k in keys] if written else []
                    images = [image for image in images if image is not None]
                    if images or stream:
                        self._append({"ddb": images, "stream": stream})
                    for function_arn, record in stream:
                        self.deliver(function_arn, record)

    def _image(self, backend: DynamoDBBackend, table_name: str, key: dict[str, Any]) -> list[Any] | None:
        table = backend.tables.get(table_name) or next(
            (t for t in backend.tables.values() if t.table_arn == table_name), None
        )
        if table is None or table.hash_key_attr not in key:
            return None
        range_json = key.get(table.range_key_attr) if table.range_key_attr else None
        if table.range_key_attr and range_json is None:
            return None
        item = table.get_item(DynamoType(key[table.hash_key_attr]), DynamoType(range_json) if range_json else None)
        attributes = item.to_json()["Attributes"] if item is not None else None
        return [table.name, _item_key(key[table.hash_key_attr], range_json), attributes]

    def stream_record(self, function_arn: str, record: Record) -> bool:
        """A stream record made inside a journaled write: journaled with it, delivered after. False: not inside."""
        pending = getattr(self._op, "stream", None)
        if pending is None:
            return False
        pending.append((function_arn, record))
        return True

    def delivered(self, function_arn: str, records: list[Record]) -> None:
        if records:
            self._append({"done": [[function_arn, r["eventID"]] for r in records]})

    def _install_dynamodb(self) -> None:
        # moto 5.2.5: every item write goes through these backend methods (batch writes call put/delete): journal
        # the items' images after each, with the stream records it produced.
        state = self
        put, update, delete = DynamoDBBackend.put_item, DynamoDBBackend.update_item, DynamoDBBackend.delete_item
        transact = DynamoDBBackend.transact_write_items

        def put_item(backend: DynamoDBBackend, table_name: str, item_attrs: dict[str, Any], *a: Any, **kw: Any) -> Any:
            with state._dynamodb_write(backend, [(table_name, item_attrs)]):
                return put(backend, table_name, item_attrs, *a, **kw)

        def update_item(backend: DynamoDBBackend, table_name: str, key: dict[str, Any], *a: Any, **kw: Any) -> Any:
            with state._dynamodb_write(backend, [(table_name, key)]):
                return update(backend, table_name, key, *a, **kw)

        def delete_item(backend: DynamoDBBackend, table_name: str, key: dict[str, Any], *a: Any, **kw: Any) -> Any:
            with state._dynamodb_write(backend, [(table_name, key)]):
                return delete(backend, table_name, key, *a, **kw)

        def transact_write_items(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
            touched = []
            for entry in transact_items:
                kind, operation = next(iter(entry.items()))
                if kind in ("Put", "Update", "Delete"):
                    touched.append((operation["TableName"], operation["Item"] if kind == "Put" else operation["Key"]))
            with state._dynamodb_write(backend, touched):
                transact(backend, transact_items)

        self._patch("ddb_put", put_item)
        self._patch("ddb_update", update_item)
        self._patch("ddb_delete", delete_item)
        self._patch("ddb_transact", transact_write_items)

    def _blob(self, value: bytes) -> str:
        digest = hashlib.sha256(value).hexdigest()
        path = self.root / "blobs" / digest
        if not path.exists():
            temp = path.with_name(f".{digest}.{uuid.uuid4().hex}.tmp")
            temp.write_bytes(value)
            temp.replace(path)
        return digest

    def _install_s3(self) -> None:
        # moto 5.2.5: PutObject (and the restore) go through S3Backend.put_object; its bytes go to a blob file.
        state = self
        put, delete = S3Backend.put_object, S3Backend.delete_object

        def put_object(backend: S3Backend, bucket_name: str, key_name: str, value: bytes, *a: Any, **kw: Any) -> Any:
            key = put(backend, bucket_name, key_name, value, *a, **kw)
            with state._s3_lock:
                record = {
                    "id": uuid.uuid4().hex,
                    "bucket": bucket_name,
                    "key": key_name,
                    "blob": state._blob(bytes(key.value)),
                    "versioned": bool(backend.get_bucket(bucket_name).is_versioned),
                    # put_object's own arguments, as the object keeps them (its Object Lock, its encryption)
                    "args": {
                        "storage": key.storage_class if key.storage_class != "STANDARD" else None,
                        "encryption": key.encryption,
                        "kms_key_id": key.kms_key_id,
                        "bucket_key_enabled": key.bucket_key_enabled,
                        "lock_mode": key.lock_mode,
                        "lock_legal_status": key.lock_legal_status,
                        "lock_until": key.lock_until,
                    },
                }
                state._append({"s3": record})
            return key

        def delete_object(backend: S3Backend, bucket_name: str, key_name: str, *a: Any, **kw: Any) -> Any:
            answer = delete(backend, bucket_name, key_name, *a, **kw)
            with state._s3_lock:
                state._append({"s3del": [bucket_name, key_name]})
            return answer

        self._patch("s3_put", put_object)
        self._patch("s3_delete", delete_object)

    def _install_sqs(self) -> None:
        # moto 5.2.5: Queue.add_message takes sends and dead-letter moves alike; Queue.delete_message every delete.
        state = self
        add, delete = Queue.add_message, Queue.delete_message

        def add_message(queue: Queue, message: Message) -> None:
            # Sent, or moved to a dead-letter queue by its redrive policy: the message's queue is now this one.
            with state._sqs_lock:
                state._append(
                    {
                        "sqs": {
                            "id": message.id,
                            "queue": queue.name,
                            "body": message.body,
                            "attributes": message.message_attributes,
                            "group_id": message.group_id,
                            "deduplication_id": message.deduplication_id,
                        }
                    }
                )
            add(queue, message)

        def delete_message(queue: Queue, receipt_handle: str) -> None:
            ids = [m.id for m in list(queue._messages) if m.had_receipt_handle(receipt_handle)]
            delete(queue, receipt_handle)
            if ids:
                with state._sqs_lock:
                    state._append({"sqsdel": ids})

        self._patch("sqs_add", add_message)
        self._patch("sqs_delete", delete_message)

    def _install_stepfunctions(self) -> None:
        # moto 5.2.5: the parser backend starts every run (through infra/local/stepfunctions.py's alias routing)
        # and its worker's ``terminated`` is where a run's outcome is set.
        state = self
        start, terminated = StepFunctionsParserBackend.start_execution, BaseExecutionWorkerCommunication.terminated

        def start_execution(backend: StepFunctionsParserBackend, state_machine_arn: str, *a: Any, **kw: Any) -> Any:
            execution = start(backend, state_machine_arn, *a, **kw)
            # Only Standard runs outlive their request; an Express run's caller waits for its end.
            if execution.sm_type == StateMachineType.STANDARD and execution.exec_arn not in state._runs_seen:
                state._runs_seen.add(execution.exec_arn)
                run = {
                    "arn": execution.exec_arn,
                    "machine": state_machine_arn,
                    "name": execution.name,
                    "input": execution.execution_input,
                    "trace_header": execution.trace_header,
                    "started": execution.start_date.isoformat(),
                }
                state._append({"run": run})
            return execution

        def ended(comm: BaseExecutionWorkerCommunication) -> None:
            terminated(comm)
            execution: Execution = comm.execution
            if execution.sm_type != StateMachineType.STANDARD:
                return
            output = json.dumps(execution.output, separators=(",", ":")) if execution.output is not None else None
            end = {
                "arn": execution.exec_arn,
                "status": execution.status,
                "output": output,
                "error": execution.error,
                "cause": execution.cause,
                "stopped": execution.stop_date.isoformat() if execution.stop_date else _now(),
            }
            state._append({"end": end})

        self._patch("sfn_start", start_execution)
        self._patch("sfn_end", ended)


class _RestoredExecution(Execution):
    """A run that ended before the plane restarted: its outcome is kept, its event history is not."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # moto asks every execution's worker for task tokens and map runs (SendTaskFailure, DescribeMapRun):
        # an ended run holds none.
        pools = {
            "callback_pool_manager": SimpleNamespace(notify=lambda **_: False, get=lambda _: None),
            "map_run_record_pool_manager": SimpleNamespace(get=lambda _: None, get_all=lambda: []),
        }
        self.exec_worker = SimpleNamespace(env=SimpleNamespace(**pools))  # type: ignore[assignment]

    def to_history_output(self) -> GetExecutionHistoryOutput:
        return GetExecutionHistoryOutput(events=[])


class JournaledStreams(StreamDelivery):
    """Stream delivery whose records are journaled with the write that made them, and marked once delivered (or
    sent to the mapping's failure destination): a restarted plane delivers the rest again."""

    def __init__(self, client: Callable[[str], Any], *, window_scale: float = 0.01) -> None:
        super().__init__(client, window_scale=window_scale)
        self.state: StateDir | None = None

    def attach(self, state: StateDir) -> None:
        self.state = state
        state.deliver = super().enqueue

    def enqueue(self, function_arn: str, record: Record) -> None:
        if function_arn not in self.mappings:
            return
        if self.state is not None and self.state.stream_record(function_arn, record):
            return  # delivered once the write's line is journaled
        super().enqueue(function_arn, record)

    def _invoke(self, mapping: Any, batch: list[Record]) -> tuple[int | None, str]:
        failed_from, error = super()._invoke(mapping, batch)
        if self.state is not None:
            self.state.delivered(mapping.function_arn, batch if failed_from is None else batch[:failed_from])
        return failed_from, error

    def _give_up(self, mapping: Any, batch: list[Record], error: str) -> None:
        super()._give_up(mapping, batch, error)
        if self.state is not None:
            self.state.delivered(mapping.function_arn, batch)


def linked_name(name: str) -> str:
    """The name a run is started again under: ``<run id>-r<N>``, one more than the last restart's."""
    base, _, count = name.rpartition("-r")
    return f"{base}-r{int(count) + 1}" if base and count.isdigit() else f"{name}-r1"


def resume_runs(
    state: StateDir, clients: Callable[[str], Any], *, executions: str | None, approvals: str | None
) -> list[str]:
    """Start every accepted run with no outcome again from its input under a linked name; return their run ids.

    On AWS the execution would have survived; here its interpreter died with the plane. Its run id (correlation
    id) and input are unchanged, so each step it had finished finds its decision record and answers it again
    (idempotent recording): no run gets two decisions. The executions view names the new execution; approvals it
    had opened are expired, since their task tokens died too (the resumed run asks again).
    """
    sfn, ddb = clients("stepfunctions"), clients("dynamodb")
    resumed = []
    for run in state.saved.open_runs():
        run_id = str(json.loads(run["input"]).get("correlation_id") or run["name"])
        if approvals:
            _expire_approvals(ddb, approvals, run_id)
        request = {"stateMachineArn": run["machine"], "name": linked_name(run["name"]), "input": run["input"]}
        if run.get("trace_header"):
            request["traceHeader"] = run["trace_header"]
        try:
            new_arn = sfn.start_execution(**request)["executionArn"]
        except ClientError as error:  # its workflow is gone from the template: left as it was
            state.summary.not_resumed.append(f"{run_id} ({error.response.get('Error', {}).get('Code')})")
            continue
        state.resumed(run["arn"], new_arn)
        if not executions:
            resumed.append(run_id)
            continue
        with contextlib.suppress(ddb.exceptions.ConditionalCheckFailedException):
            ddb.update_item(
                TableName=executions,
                Key={"execution_id": {"S": run_id}},
                UpdateExpression="SET execution_arn = :arn",
                ConditionExpression="attribute_exists(execution_id)",  # not yet written when the plane died
                ExpressionAttributeValues={":arn": {"S": new_arn}},
            )
        resumed.append(run_id)
    state.summary.runs_resumed = resumed
    return resumed


def _expire_approvals(ddb: Any, table: str, run_id: str) -> None:
    pages = ddb.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="execution_id = :run AND #s = :pending",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":run": {"S": run_id}, ":pending": {"S": "PENDING"}},
    )
    for page in pages:
        for item in page["Items"]:
            with contextlib.suppress(ddb.exceptions.ConditionalCheckFailedException):
                ddb.update_item(
                    TableName=table,
                    Key={"approval_id": item["approval_id"]},
                    UpdateExpression="SET #s = :expired, decided_by = :by, reason = :why, decided_at = :at",
                    ConditionExpression="#s = :pending",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={
                        ":expired": {"S": "EXPIRED"},
                        ":pending": {"S": "PENDING"},
                        ":by": {"S": "system:restart"},
                        ":why": {"S": "the local plane restarted; the resumed run asks again"},
                        ":at": {"S": _now()},
                    },
                )


def read_credentials(path: Path) -> dict[str, dict[str, str]]:
    """The persona keys a previous plane wrote; nothing if it left none (or a file cut short)."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in document.items() if isinstance(v, dict)} if isinstance(document, dict) else {}


def release_in_progress(clients: Callable[[str], Any], tables: set[str]) -> int:
    """Drop the idempotency markers (Powertools' ``status = INPROGRESS``) of invocations that died with the previous
    plane: on AWS the invocation's timeout expires its marker and a retry runs it; here the resumed run would find
    the marker and fail ``IdempotencyAlreadyInProgressError``. Returns how many were dropped."""
    ddb = clients("dynamodb")
    dropped = 0
    for table in sorted(tables):
        keys = [a["AttributeName"] for a in ddb.describe_table(TableName=table)["Table"]["KeySchema"]]
        pages = ddb.get_paginator("scan").paginate(
            TableName=table,
            FilterExpression="#s = :in_progress",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":in_progress": {"S": "INPROGRESS"}},
        )
        for item in (item for page in pages for item in page["Items"]):
            with contextlib.suppress(ddb.exceptions.ConditionalCheckFailedException):
                ddb.delete_item(
                    TableName=table,
                    Key={k: item[k] for k in keys},
                    ConditionExpression="#s = :in_progress",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":in_progress": {"S": "INPROGRESS"}},
                )
                dropped += 1
    return dropped


class JournaledEvents(EventDelivery):
    """Bus delivery whose accepted events are journaled before PutEvents answers and marked once delivered (or
    dead-lettered): EventBridge keeps what it accepted, so a restarted plane delivers the rest."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state: StateDir | None = None
        self._delivery_ids: dict[int, str] = {}  # id() of a queued event -> its journal id (copies are distinct)

    def enqueue(self, event: dict[str, Any], target: dict[str, Any], delivery_id: str | None = None) -> None:
        if self.state is not None:
            delivery_id = delivery_id or uuid.uuid4().hex
            if delivery_id not in self.state.saved.events:
                self.state._append({"event": {"id": delivery_id, "event": event, "target": target}})
            self._delivery_ids[id(event)] = delivery_id
        super().enqueue(event, target)

    def _deliver(self, event: dict[str, Any], target: dict[str, Any]) -> None:
        super()._deliver(event, target)
        delivery_id = self._delivery_ids.pop(id(event), None)
        if self.state is not None and delivery_id is not None:
            self.state._append({"event_done": [delivery_id]})
