"""UTC timestamps as the ledger writes them: ISO-8601 text with a zero offset."""

from __future__ import annotations

from datetime import datetime, timedelta

_ZERO = timedelta(0)


def parse_utc(value: str) -> datetime:
    """The instant an ISO-8601 UTC timestamp names; ValueError for text without a zero UTC offset."""
    moment = datetime.fromisoformat(value)
    if moment.utcoffset() != _ZERO:
        raise ValueError(f"{value!r} is not an ISO-8601 UTC timestamp (Z or +00:00)")
    return moment


def require_utc(value: str) -> str:
    """Pydantic validator: keep the text exactly as given (it is hashed), only check it."""
    parse_utc(value)
    return value
