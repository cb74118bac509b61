"""The audit ledger's pure core: hash chains (over :mod:`functions.runtime.canonical` JSON), Merkle trees, signed
digests, export and proofs.

No AWS and no environment here: the appender and digest functions bring the store and the signer
(see ``functions.runtime.ledger_store``).
"""

from functions.runtime.ledger import merkle
from functions.runtime.ledger.chain import (
    CHAINS,
    GENESIS_HASH,
    LedgerEntry,
    chain_for,
    chain_ids,
    check_entry,
    make_entry,
    record_id_for,
)
from functions.runtime.ledger.checkpoint import Checkpoint, checkpoint_of, rollback_reasons
from functions.runtime.ledger.digest import (
    ChainHead,
    DigestBody,
    LocalSigner,
    SignedDigest,
    Signer,
    build_digest,
    digest_leaves,
    sign_digest,
    verify_signature,
)
from functions.runtime.ledger.errors import (
    CanonicalizationError,
    DigestError,
    ExportError,
    LedgerError,
    ProofError,
)
from functions.runtime.ledger.export import Export, digest_line, entry_line, key_line, read_export, write_export
from functions.runtime.ledger.proof import InclusionProof, prove, verify_proof
from functions.runtime.ledger.verify import Problem, VerifyReport, digest_age_problem, verify_export

__all__ = [
    "CHAINS",
    "GENESIS_HASH",
    "CanonicalizationError",
    "ChainHead",
    "Checkpoint",
    "DigestBody",
    "DigestError",
    "Export",
    "ExportError",
    "InclusionProof",
    "LedgerEntry",
    "LedgerError",
    "LocalSigner",
    "Problem",
    "ProofError",
    "SignedDigest",
    "Signer",
    "VerifyReport",
    "build_digest",
    "chain_for",
    "chain_ids",
    "check_entry",
    "checkpoint_of",
    "digest_age_problem",
    "digest_leaves",
    "digest_line",
    "entry_line",
    "key_line",
    "make_entry",
    "merkle",
    "prove",
    "read_export",
    "record_id_for",
    "rollback_reasons",
    "sign_digest",
    "verify_export",
    "verify_proof",
    "verify_signature",
    "write_export",
]
