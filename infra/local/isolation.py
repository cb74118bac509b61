"""Per-invocation environment and stdout, so in-process functions see only their own settings and logs.

Lambda gives each function its own process; here many run as threads of one. While a function runs,
its thread sees an overlay of ``os.environ`` (the function's environment from the template) and its
prints and log lines go to that function's log file, as CloudWatch Logs would keep them apart.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import IO, Any, TextIO


class ThreadLocalEnviron(MutableMapping[str, str]):
    def __init__(self, base: MutableMapping[str, str]) -> None:
        self.base = base
        self._local = threading.local()

    def _overlay(self) -> dict[str, str] | None:
        overlay: dict[str, str] | None = getattr(self._local, "overlay", None)
        return overlay

    def __getitem__(self, key: str) -> str:
        overlay = self._overlay()
        if overlay is not None:
            return overlay[key]
        return self.base[key]

    def __setitem__(self, key: str, value: str) -> None:
        overlay = self._overlay()
        if overlay is not None:
            overlay[key] = value
        else:
            self.base[key] = value

    def __delitem__(self, key: str) -> None:
        overlay = self._overlay()
        if overlay is not None:
            del overlay[key]
        else:
            del self.base[key]

    def __iter__(self) -> Iterator[str]:
        overlay = self._overlay()
        return iter(list(overlay if overlay is not None else self.base))

    def __len__(self) -> int:
        overlay = self._overlay()
        return len(overlay if overlay is not None else self.base)

    def copy(self) -> dict[str, str]:
        return dict(self)

    @contextmanager
    def scoped(self, environment: Mapping[str, str]) -> Iterator[None]:
        """The calling thread sees exactly ``environment`` (nothing inherited from the host) until exit."""
        previous = self._overlay()
        self._local.overlay = dict(environment)
        try:
            yield
        finally:
            self._local.overlay = previous


class ThreadLocalStream:
    """A stdout whose writes go to the calling thread's sink when it has one."""

    def __init__(self, default: TextIO) -> None:
        self.default = default
        self._local = threading.local()

    def _sink(self) -> IO[str]:
        sink: IO[str] | None = getattr(self._local, "sink", None)
        return sink if sink is not None else self.default

    def write(self, text: str) -> int:
        return self._sink().write(text)

    def flush(self) -> None:
        self._sink().flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.default, name)

    @contextmanager
    def scoped(self, sink: IO[str]) -> Iterator[None]:
        previous = getattr(self._local, "sink", None)
        self._local.sink = sink
        try:
            yield
        finally:
            self._local.sink = previous


class Isolation:
    """Installs the overlays for the plane's lifetime and puts back what was there."""

    def __init__(self) -> None:
        self.environ = ThreadLocalEnviron(os.environ)
        self.stdout = ThreadLocalStream(sys.stdout)
        self._saved: tuple[Any, Any] | None = None

    def install(self) -> None:
        self._saved = (os.environ, sys.stdout)
        os.environ = self.environ  # type: ignore[assignment]  # noqa: B003 - replaced, restored on uninstall
        sys.stdout = self.stdout

    def uninstall(self) -> None:
        if self._saved is not None:
            os.environ, sys.stdout = self._saved
            self._saved = None

    @contextmanager
    def scoped(self, environment: Mapping[str, str], sink: IO[str]) -> Iterator[None]:
        with self.environ.scoped(environment), self.stdout.scoped(sink):
            yield
