"""Ledger errors, in one place (a value with no canonical form raises the canonical module's own error)."""

from functions.runtime.canonical import CanonicalizationError

__all__ = ["CanonicalizationError", "DigestError", "ExportError", "LedgerError", "ProofError"]


class LedgerError(Exception):
    """Base class for everything the ledger refuses."""


class DigestError(LedgerError, ValueError):
    """A digest cannot be built or signed from what was given (it would not match the chains)."""


class ExportError(LedgerError, ValueError):
    """An export file is not in the export format; the message names the line."""


class ProofError(LedgerError, LookupError):
    """No inclusion proof can be made for the record (unknown, not yet digested, or the export disagrees)."""
