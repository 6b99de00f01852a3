"""One database connection per thread, closed when its thread has ended: :class:`PerThreadConnections`.

The log index stores (SQLite, PostgreSQL) and the archive open a connection in each
thread that uses them (DB-API connections are not shared between threads). Threads
come and go (a writer per indexing pass, a web server's pool), so each time a thread
opens one, the connections of the threads that ended are closed.
"""

from __future__ import annotations

import threading
from typing import Generic, Protocol, Self, TypeVar

__all__ = ["Closable", "PerThreadConnections"]


class Closable(Protocol):
    """A connection: something with ``close()``."""

    def close(self) -> None:
        """Release it."""
        ...


C = TypeVar("C", bound=Closable)


class PerThreadConnections(Generic[C]):
    """A mixin keeping one connection per thread for the object it is mixed into.

    The object calls :meth:`_init_connections` in its constructor, looks up the calling
    thread's connection with :meth:`_thread_conn` and registers a new one with
    :meth:`_adopt_conn`; :meth:`close` closes them all (also on leaving a ``with``).
    """

    def _init_connections(
        self, errors: type[BaseException] | tuple[type[BaseException], ...]
    ) -> None:
        """Start with no connection; ``errors`` are what closing one may raise (ignored)."""
        self._conn_errors = errors
        self._local = threading.local()
        self._all: dict[int, C] = {}  # by thread
        self._lock = threading.Lock()

    def _thread_conn(self) -> C | None:
        """The calling thread's connection, if it opened one."""
        return getattr(self._local, "conn", None)

    def _adopt_conn(self, conn: C) -> C:
        """Make ``conn`` the calling thread's connection, and close those of ended threads."""
        self._local.conn = conn
        with self._lock:
            alive = {t.ident for t in threading.enumerate()}
            for ident in [i for i in self._all if i not in alive]:
                try:
                    self._all.pop(ident).close()
                except self._conn_errors:
                    pass
            self._all[threading.get_ident()] = conn
        return conn

    def close(self) -> None:
        """Close every connection this object opened (in any thread)."""
        with self._lock:
            conns, self._all = list(self._all.values()), {}
        for conn in conns:
            try:
                conn.close()
            except self._conn_errors:
                pass
        self._local = threading.local()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
