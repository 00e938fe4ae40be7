"""Tables and plots from cosim trace directories; reads files only, never the engine.

- :mod:`analysis.io` — read run directories (``events``/``rounds``/``devices``, Parquet or
  CSV, ``summary.json``, ``scenario.yaml``) and comparison directories (``comparison.*``).
- :mod:`analysis.table` — per-cell mean ± std, baseline ratios, the PFL-TPS claims table.
- :mod:`analysis.plots` — PNG figures (``python -m analysis plot``).

Command line: ``python -m analysis {plot,table} ...`` (see :mod:`analysis.__main__`).
"""
