"""gwms.frontend: from idle user jobs to glidein requests per factory entry.

The decision core is pure (no I/O, no clocks read, no threads); the service loop that
queries schedds, collectors and factories and advertises the requests builds on it.

- :mod:`gwms.frontend.config` — ``FrontendConfig`` (config kind ``frontend``), defaults
  in one place, and each group's effective view: ``match_policy(group)``,
  ``request_limits(group)``, ``removal_policy(group)``, ``job_query(group)``,
  ``factory_query(group)``, ``start_expr(group)``, ``wms_collectors_of(group)``,
  ``schedds_of(group)``, ``credentials_of(group)``, ``attrs_of(group)``.
- :mod:`gwms.frontend.matchexpr` — the safe ``match_expr`` (whitelisted Python) and
  ``expr``-typed attributes.
- :mod:`gwms.frontend.classify` — job classes, saturated schedds
  (``schedd_exclusion``), slot counts per entry/group/frontend/pool (``count_slots``),
  real running glideins per entry (``count_real_running``).
- :mod:`gwms.frontend.matching` — ``entry_from_factory_ad``, ``match_jobs`` (clusters,
  match, count, prop, hereonly, prop_mc per job class and entry).
- :mod:`gwms.frontend.requests` — ``compute_request``: min idle and max run with every
  max and curb, and the names of the limits that fired.
- :mod:`gwms.frontend.removal` — ``decide_removal``: NO/WAIT/IDLE/ALL with guardrails.
- :mod:`gwms.frontend.xmlimport` — ``gwms config import`` of GlideinWMS XML.
- :mod:`gwms.frontend.adnames` — the ad attribute names the frontend reads.

One group's cycle, put together (what the service does between its queries and its
advertising)::

    policy = cfg.match_policy(group)
    entries = [entry_from_factory_ad(ad, factory_pool=url, my_identity=me) for ad in entry_ads]
    excluded = {name for name, ad in schedd_ads.items() if schedd_exclusion(ad)}
    result = match_jobs(jobs_by_schedd, entries, policy, now=schedd_time, excluded_schedds=excluded)
    slots = count_slots(slot_ads, frontend_name=cfg.frontend_name, group_name=group,
                        min_memory=cfg.group(group).limits.partitionable_glidein.min_memory)
    running = count_real_running(running_jobs, slots.entry_of_glidein)
    totals = Totals(slots.group.total, slots.group.idle, slots.frontend.total,
                    slots.frontend.idle, slots.pool.total, slots.pool.idle)
    for i, entry in enumerate(entries):
        here = slots.entry(entry.name)
        demand = EntryDemand(result["Idle"].prop_mc[i], result["OldIdle"].prop_mc[i],
                             here.total, here.idle, running.get(entry.name, RealRunning()).glideins)
        request = compute_request(demand, totals, cfg.request_limits(group), in_downtime=...)
        removal = decide_removal(states[entry.key], Observation(result["Idle"].count[i],
                                 here.total, here.idle, complete=all_queries_ok), policy_r)
        states[entry.key] = removal.state
        # advertise request.min_idle, request.max_run, removal.level, removal.margin,
        # and request.limits in the glideresource ad
"""
