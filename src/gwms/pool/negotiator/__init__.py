"""The negotiator: matchmaking of idle jobs to free slots, with fair share.

- :mod:`~gwms.pool.negotiator.matchmaker` — :func:`negotiate`, the pure matching of job
  groups (autoclusters) to slot groups, in fair-share order;
- :mod:`~gwms.pool.negotiator.slots` — slot grouping and partitionable-slot carving;
- :mod:`~gwms.pool.negotiator.fairshare` — usage with a half-life, priorities, factors;
- :mod:`~gwms.pool.negotiator.analyze` — why a job does not run (``gwms q -analyze``);
- :mod:`~gwms.pool.negotiator.service` — the cycle against a collector and schedds, its
  loop, early trigger, and HTTP endpoint (``gwms negotiator run``).
"""

from gwms.pool.negotiator.matchmaker import JobGroup, Match, NegotiationResult, negotiate

__all__ = ["JobGroup", "Match", "NegotiationResult", "negotiate"]
