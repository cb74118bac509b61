"""Ledger digest: on a schedule (and on demand), sign what was appended since the last digest."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.ledger_digest.service import run_digest
from functions.runtime.adapters import table
from functions.runtime.ledger_store import DynamoLedgerStore, KmsSigner, S3DigestArchive

logger = Logger(service="ledger-digest")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    signed = run_digest(
        store=DynamoLedgerStore(table(os.environ["LEDGER_TABLE"])),
        signer=KmsSigner(os.environ["SIGNING_KEY_ID"]),
        archive=S3DigestArchive(os.environ["DIGESTS_BUCKET"]),
        now=datetime.now(UTC).isoformat(),
        interval_s=int(os.environ["DIGEST_INTERVAL_S"]),
    )
    logger.info("digest signed", seq=signed.body.seq, leaves=signed.body.leaf_count, root=signed.body.merkle_root)
    return {"seq": signed.body.seq, "leaf_count": signed.body.leaf_count, "merkle_root": signed.body.merkle_root}
