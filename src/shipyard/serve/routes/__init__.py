"""The model server's routes, one module per concern; ``serve.app.create_app`` assembles them.

- ``health``: liveness and readiness probes (public).
- ``inference``: ``POST /models/{name}/predict`` and the V2 ``infer``, model metadata.
- ``feedback``: ground-truth labels for earlier answers.
- ``metrics``: the Prometheus exposition.
- ``admin``: served models and traffic policies at run time.

Each module holds an ``APIRouter`` whose handlers take their dependencies from the app's
``ServerContext`` (``serve.context``), so it can be mounted and tested alone.
"""
