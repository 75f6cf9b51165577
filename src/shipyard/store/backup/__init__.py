"""Backups of a workspace: a consistent metadata snapshot and its blobs, checked, restorable.

``create_backup`` (``create.py``), ``verify_backup`` (``verify.py``), ``restore_backup``
(``restore.py``), ``list_backups`` and ``prune_backups`` (``catalog.py``); the on-disk layout and
the manifest are in ``manifest.py``. Store-level only: what the drill does with a restored copy
(load the production model, score the reference batch) lives in ``shipyard.serve.drill``.
"""
