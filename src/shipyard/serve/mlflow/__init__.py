"""The MLflow tracking REST API, answered by Shipyard from its own stores (issue 22).

``MLFLOW_TRACKING_URI=http://shipyard-host:port`` (and ``MLFLOW_TRACKING_TOKEN`` holding a
Shipyard token) is all an MLflow user changes: runs, params, tags, metric histories and
artifacts logged through the official client become Shipyard runs that ``shipyard runs list``,
the UI and cost see; registered models, versions and aliases land in Shipyard's registry.

- ``errors``: MLflow's error shape ``{"error_code", "message"}`` for every failure.
- ``wire``: reading MLflow's JSON (proto3 JSON: int64 as strings) and writing its records.
- ``filters``: MLflow's search syntax translated to Shipyard's filter language.
- ``tracking``: experiments, runs, params, tags, metrics (through the buffered writer).
- ``models``: registered models, versions and aliases.
- ``artifacts``: the artifact proxy (``/api/2.0/mlflow-artifacts``) over the blob store.
- ``routes``: the route table; ``app``: the ASGI app ``shipyard tracking-server`` runs.
"""
