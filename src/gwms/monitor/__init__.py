"""gwms.monitor: the log monitor (GlideinMonitor's successor).

The building blocks, each a module with one concept:

- :mod:`gwms.monitor.sections`: the ``.err`` codec. :func:`~gwms.monitor.sections.split_err`
  cuts an ``.err`` into plain text and decoded sections (every gzip member, the XML
  summary; damage reported in ``Section.problem``, never raised);
  :func:`~gwms.monitor.sections.join_err` rebuilds it exactly;
  :func:`~gwms.monitor.sections.encode_section` / ``encode_xml_section`` /
  ``reencode_section`` write the original's format.
- :mod:`gwms.monitor.outfile`: :func:`~gwms.monitor.outfile.parse_out` turns an ``.out``
  (header and markers) into an :class:`~gwms.monitor.outfile.OutSummary` (glidein uuid,
  factory job id, entry, client, host, times, validation and condor durations, exit
  code, jobs run, activations).
- :mod:`gwms.monitor.anonymize`: finding identifying values and replacing them,
  reversibly (Crypto-PAn, AES-SIV tokens) or not (HMAC pseudonyms, truncation,
  redaction), across ``.out``, ``.err`` and every section.
- :mod:`gwms.monitor.samples`: realistic generated ``.out``/``.err`` files in the
  original's exact format, for tests and benchmarks.
"""
