"""One-line errors: the first of a pydantic validation error's, and a file that cannot be read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError


def first_error(exc: ValidationError, *, root: str = "<root>") -> str:
    """``field.path: message`` of the first error (``root`` when it is about the whole value), ``(+N more)`` after."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or root
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {error['msg']}{more}"


def read_text(path: Path, error: Callable[[str], Exception], what: str = "", *, named: str | None = None) -> str:
    """The file's text; one that cannot be read (missing, a folder, not UTF-8) raises ``error`` with one line."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc.__class__.__name__
        raise error(f"{named or path}: cannot read{' ' + what if what else ''}: {reason}") from exc
