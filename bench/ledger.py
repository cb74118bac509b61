"""Audit ledger figures, each beside its anchor measured in the same run (one core).

- append: entries/s building hash-chained entries (RFC 8785 canonicalisation + SHA-256), beside raw SHA-256;
- verify: entries/s for reading an export of those entries from a file and `verify_export` on it (what
  `agentplane audit verify FILE` does), and for `verify_export` alone on the parsed export, beside raw
  SHA-256 over the same bytes;
- proof: inclusion-proof size and verification time in a tree of 10^6 leaves.
Writes bench/results/ledger-<timestamp>.json. A benchmark, not a test: it never fails on a number.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from report import write_report  # bench/ is this script's folder

from functions.runtime.ledger import (
    GENESIS_HASH,
    ChainHead,
    LocalSigner,
    build_digest,
    chain_for,
    make_entry,
    read_export,
    sign_digest,
    verify_export,
    write_export,
)
from functions.runtime.ledger.merkle import inclusion_proof, leaf_hash, root, verify_inclusion

REPO = Path(__file__).resolve().parents[1]


def record(i: int) -> dict[str, object]:
    run = f"run-{i // 14}"
    return {
        "correlation_id": run,
        "step_key": f"{run}/VerifyClaim/{i % 14}",
        "trace_id": "1-6b000000-0123456789abcdef01234567",
        "agent": "evidence-verifier",
        "agent_version": "1.0.0",
        "capability": "fact-check",
        "status": "SUCCEEDED",
        "actor": "agent:evidence-verifier",
        "input_sha256": hashlib.sha256(str(i).encode()).hexdigest(),
        "output_sha256": hashlib.sha256(str(-i).encode()).hexdigest(),
        "started_at": "2026-11-23T12:00:00+00:00",
        "duration_ms": "0.742",
        "output_json": json.dumps({"claim_id": f"c-{i % 100:03d}", "label": "supported", "confidence": 0.95}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args()

    records = [record(i) for i in range(args.entries)]
    heads: dict[str, ChainHead] = {}
    entries = []
    started = time.perf_counter()
    for i, rec in enumerate(records):
        chain = chain_for(str(rec["correlation_id"]))
        head = heads.get(chain)
        entry = make_entry(
            chain_id=chain,
            seq=(head.seq if head else 0) + 1,
            record_id=f"{rec['correlation_id']}/{i}",
            record=rec,
            prev_hash=head.entry_hash if head else GENESIS_HASH,
            appended_at="2026-11-23T12:00:00+00:00",
        )
        heads[chain] = ChainHead(seq=entry.seq, entry_hash=entry.entry_hash)
        entries.append(entry)
    append_s = time.perf_counter() - started
    payloads = [e.canonical.encode() for e in entries]
    started = time.perf_counter()
    for payload in payloads:
        hashlib.sha256(payload).digest()
    raw_sha_s = time.perf_counter() - started

    signer = LocalSigner.generate()
    body = build_digest(
        seq=1,
        previous=None,
        entries_since=sorted(entries, key=lambda e: (e.chain_id, e.seq)),
        heads=heads,
        created_at="2026-11-23T12:05:00+00:00",
        interval_s=900,
        key_id=signer.key_id,
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ledger.jsonl"
        with path.open("w", encoding="utf-8") as fp:
            write_export(
                fp,
                public_key_pem=signer.public_key_pem(),
                key_id=signer.key_id,
                entries=entries,
                digests=[sign_digest(body, signer)],
            )
        export_bytes = path.stat().st_size
        del entries, records, heads, payloads  # a verifier starts with the file alone
        started = time.perf_counter()
        with path.open(encoding="utf-8") as fp:  # as `agentplane audit verify FILE` reads it
            export = read_export(fp)
        read_s = time.perf_counter() - started
        report = verify_export(export)
        verify_s = time.perf_counter() - started - read_s
    if not report.ok:
        print(f"benchmark export does not verify: {report.first_problem}", file=sys.stderr)
        return 1

    leaves = [leaf_hash(i.to_bytes(8, "big")) for i in range(args.leaves)]
    started = time.perf_counter()
    tree_root = root(leaves)
    root_s = time.perf_counter() - started
    index = args.leaves // 3
    proof = inclusion_proof(index, leaves)
    timings = []
    for _ in range(1000):
        t0 = time.perf_counter()
        ok = verify_inclusion(leaf_hash=leaves[index], index=index, size=args.leaves, proof=proof, root=tree_root)
        timings.append(time.perf_counter() - t0)
    if not ok:
        print("inclusion proof does not verify", file=sys.stderr)
        return 1

    report_json = {
        "benchmark": "audit-ledger",
        "when": datetime.now(UTC).isoformat(),
        "entries": args.entries,
        "append_entries_per_s": round(args.entries / append_s),
        "verify_with_read_entries_per_s": round(args.entries / (read_s + verify_s)),
        "verify_entries_per_s": round(args.entries / verify_s),  # the parsed export only
        "export_bytes": export_bytes,
        "anchor_raw_sha256_entries_per_s": round(args.entries / raw_sha_s),
        "verify_target_entries_per_s": 50_000,
        "proof": {
            "leaves": args.leaves,
            "tree_root_s": round(root_s, 2),
            "path_hashes": len(proof),
            "size_bytes": 32 * len(proof),
            "verify_ms_p50": round(statistics.median(timings) * 1000, 4),
            "verify_target_ms": 1.0,
        },
    }
    write_report("ledger", report_json, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
