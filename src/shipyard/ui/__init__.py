"""The web UI (``shipyard ui``): server-rendered pages over the stores the CLI reads.

An entry point beside ``cli``: it may use every package above it and nothing imports it.
``app.create_app`` assembles the pages (``pages/``), the guard (``guard.py``: session,
permission table, CSRF, security headers) and the static files (htmx, uPlot, our own JS);
docs/ui.md describes it for users.
"""
