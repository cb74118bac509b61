"""ARNs the template writes and the plane reads: a live alias is ``<function or state machine ARN>:<alias>``."""

from __future__ import annotations

# A Lambda alias ARN: arn:aws:lambda:REGION:ACCOUNT:function:NAME:ALIAS (8 parts); a state machine alias the same.
_QUALIFIED_PARTS = 8


def split_alias(arn: str) -> tuple[str, str] | None:
    """(function or state machine ARN, alias name) of a qualified ARN; None for an unqualified one."""
    parts = arn.split(":")
    if len(parts) != _QUALIFIED_PARTS or parts[-1].isdigit():
        return None
    return ":".join(parts[:-1]), parts[-1]
