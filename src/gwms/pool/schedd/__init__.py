"""gwms.pool.schedd: the schedd, the durable job queue of the user pool.

Modules:

- ``submit`` (with ``submit_commands``, ``submit_macros``, ``submit_quoting``,
  ``submit_values``, ``submit_items``, ``submit_errors``): the HTCondor submit-description
  language; :func:`parse_submit` and :func:`expand_submit` turn a submit file into the
  JSON-form job ads that ``gwms submit`` queues.
- ``queue_*``: the job queue store, its schema, transitions and events.
- ``sandbox``: job sandboxes in the spool.

The submit API is re-exported here lazily, so importing the queue modules does not load
the submit language.
"""

from __future__ import annotations

from typing import Any

_SUBMIT_EXPORTS = frozenset(
    {
        "Assignment",
        "QueueStatement",
        "SubmitDescription",
        "SubmitError",
        "expand_submit",
        "parse_submit",
    }
)


def __getattr__(name: str) -> Any:
    """Lazy re-export of the submit language API (``from gwms.pool.schedd import parse_submit``)."""
    if name in _SUBMIT_EXPORTS:
        from gwms.pool.schedd import submit

        return getattr(submit, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
