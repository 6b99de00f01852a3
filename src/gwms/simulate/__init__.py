"""gwms.simulate: the real frontend and factory against simulated sites and jobs, in virtual time.

- :mod:`~gwms.simulate.scenario` — the scenario file (sites, workload, the configs to drive);
- :mod:`~gwms.simulate.distributions` — queue delays, start-up times, runtimes;
- :mod:`~gwms.simulate.events` — the virtual clock and its event heap;
- :mod:`~gwms.simulate.workload` — bursts and steady arrivals of jobs;
- :mod:`~gwms.simulate.pool` — the schedd's jobs, the glideins' slots, matchmaking, and
  the glidein lifetime (the agent's own rules);
- :mod:`~gwms.simulate.sites` — simulated batch queues and the factory backend for them;
- :mod:`~gwms.simulate.memstore` — the factory's pilot store in memory;
- :mod:`~gwms.simulate.engine` — :class:`Simulation`: everything wired, the real code driven;
- :mod:`~gwms.simulate.metrics` — samples, figures and the JSON report;
- :mod:`~gwms.simulate.plot` — the report as an HTML page (inline SVG, or plotly offline).

``gwms simulate SCENARIO.yaml`` runs one (see ``docs/simulate.md``).
"""

from gwms.simulate.engine import Simulation
from gwms.simulate.scenario import Scenario, ScenarioError, load_scenario

__all__ = ["Scenario", "ScenarioError", "Simulation", "load_scenario"]
