"""gwms.factory: the glidein factory.

Modules, from the pure decisions outwards:

- :mod:`~gwms.factory.config` — the configuration (``gwms factory run --config``);
- :mod:`~gwms.factory.states` — a pilot's states;
- :mod:`~gwms.factory.limits` — keep-idle, excess removal, held and lifetime rules (pure);
- :mod:`~gwms.factory.health` — when a failing entry is paused (pure);
- :mod:`~gwms.factory.planning` — one entry's cycle decided at once (pure);
- :mod:`~gwms.factory.attributes` — names of the ads' attributes (factory and frontend);
- :mod:`~gwms.factory.requests` — reading ``glideclient`` requests (identity checks, decryption);
- :mod:`~gwms.factory.ads` — the ``glidefactory*`` ads;
- :mod:`~gwms.factory.pilotstore` — every pilot ever submitted (SQLite);
- :mod:`~gwms.factory.backends` — the batch systems (``local``, ``slurm``, ...);
- :mod:`~gwms.factory.stage` — the signed stage area the glideins download;
- :mod:`~gwms.factory.entry` — one entry's cycle (poll, plan, act, ads);
- :mod:`~gwms.factory.service` — the loop, supervised entry workers, the HTTP API.
"""
