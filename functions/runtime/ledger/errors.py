"""Ledger errors, in one place."""


class LedgerError(Exception):
    """Base class for everything the ledger refuses."""


class CanonicalizationError(LedgerError, ValueError):
    """A value has no exact, canonical JSON form (RFC 8785), so it cannot be hashed into the ledger."""


class DigestError(LedgerError, ValueError):
    """A digest cannot be built or signed from what was given (it would not match the chains)."""


class ExportError(LedgerError, ValueError):
    """An export file is not in the export format; the message names the line."""


class ProofError(LedgerError, LookupError):
    """No inclusion proof can be made for the record (unknown, not yet digested, or the export disagrees)."""
