"""One line for a pydantic validation error: where the first error is, what it says, and how many more there are."""

from __future__ import annotations

from pydantic import ValidationError


def first_error(exc: ValidationError, *, root: str = "<root>") -> str:
    """``field.path: message`` of the first error (``root`` when it is about the whole value), ``(+N more)`` after."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or root
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {error['msg']}{more}"
