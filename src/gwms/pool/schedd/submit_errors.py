"""Errors of the submit-description language.

:class:`SubmitError` is what users see: it names the submit file, the line and what is
wrong, e.g. ``job.sub, line 7: unknown submit command "reqest_memory" (did you mean
"request_memory"?)``. :class:`SubmitValueError` is raised by the pure helpers (quoting,
units, expressions, macros) that do not know which file or line they are working on;
the parser catches it and re-raises it as a :class:`SubmitError` with the location.
"""

from __future__ import annotations

from gwms.errors import GwmsError


class SubmitError(GwmsError):
    """A submit description that cannot be queued; no job of it is queued.

    ``SubmitError(source, line, reason)``: ``source`` is the name of the submit file
    (``"<file>"`` when unnamed), ``line`` the 1-based line number of the offending
    statement (``None`` when the problem is with the file as a whole) and ``reason`` what
    is wrong; the message is ``"source, line N: reason"``.

    ``SubmitError(message)`` (one argument) is a problem with no location, such as a
    submit file that cannot be read; then ``source`` is ``""``, ``line`` ``None`` and
    ``reason`` the message.
    """

    def __init__(self, source: str, line: int | None = None, reason: str | None = None) -> None:
        if reason is None and line is None:
            super().__init__(source)
            self.source = ""
            self.line = None
            self.reason = source
            return
        reason = reason or "invalid submit description"
        where = f"{source}, line {line}" if line is not None else source
        super().__init__(f"{where}: {reason}")
        self.source = source
        self.line: int | None = line
        self.reason = reason


class SubmitValueError(ValueError):
    """A value that does not fit its submit command, before the location is known.

    ``position`` is an optional 0-based offset into the value (for expressions) and
    ``command`` the submit command at fault when a rule involves several commands.
    """

    def __init__(
        self, reason: str, *, position: int | None = None, command: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.position = position
        self.command = command
