"""What else points at dataset versions and blobs: the lineage an erasure has to follow.

RELIABILITY.md lesson 10: erasure follows subject → rows → dataset versions → runs → model
versions → prediction logs. This module answers the questions past the rows, from the metadata
store only (no data is read):

* which runs name an erased version in a param or tag (training runs tag ``train_key``, which
  starts with the first 16 characters of the training data's id, and ``test_dataset``; their
  bundles record the same ids in ``lineage.dataset_ids``), and which of them trained a model;
* which versions were derived from an erased one (they may carry the subject's data under
  another column name, pseudonymized, or aggregated);
* which sources were read to produce them (the subject must be erased there too);
* which run artifacts share an erased blob;
* which registered model versions those training runs produced (``name:version``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.store.erasure import ErasureStore

if TYPE_CHECKING:
    from collections.abc import Iterable

    from shipyard.store.dataset_entities import DatasetVersion
    from shipyard.store.datasets import DatasetStore
    from shipyard.store.sql import SqlStore

#: Tags that mark a run as having trained (and bundled) a model.
TRAINING_TAGS = ("train_key", "test_dataset", "bundle_sha256")
_TRAIN_KEY_PREFIX = 16  # shipyard.pipeline.training.training_key: dataset_id[:16] + "-..."
_CHUNK = 500


def runs_referencing(
    sql: SqlStore, dataset_ids: Iterable[str], *, exclude: Iterable[str] = ()
) -> tuple[list[str], list[str]]:
    """Return the runs whose params or tags name one of ``dataset_ids``.

    Returns:
        ``(trained, other)``: ids of runs that trained a model on those versions (tag
        ``kind=train`` or a training tag), and of the other referencing runs (pipeline runs
        with ``final_dataset``, ...), each sorted.
    """
    ids = sorted(set(dataset_ids))
    skip = set(exclude)
    store = ErasureStore(sql)
    found: set[str] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        prefixes = {("train_key", i[:_TRAIN_KEY_PREFIX] + "-") for i in chunk}
        found |= store.runs_naming(chunk, prefixes)
    trained: list[str] = []
    other: list[str] = []
    for run in store.load_runs(sorted(found - skip)):
        training = run.tags.get("kind") == "train" or any(t in run.tags for t in TRAINING_TAGS)
        (trained if training else other).append(run.run_id)
    return trained, other


def descendants(store: DatasetStore, dataset_ids: Iterable[str]) -> dict[str, DatasetVersion]:
    """Return every version derived, directly or not, from one of ``dataset_ids``."""
    found: dict[str, DatasetVersion] = {}
    frontier = list(dict.fromkeys(dataset_ids))
    while frontier:
        children = [c for d in frontier for c in store.children(d) if c.dataset_id not in found]
        found.update((c.dataset_id, c) for c in children)
        frontier = [c.dataset_id for c in children]
    return found


def upstream_sources(store: DatasetStore, dataset_ids: Iterable[str]) -> list[str]:
    """Return the names of the sources whose reads produced these versions or their ancestors."""
    ids: set[str] = set()
    for dataset_id in dataset_ids:
        ids.update(store.ancestry(dataset_id))
    return sorted({s.source for s in store.snapshots_for(ids)})


def artifacts_sharing(sql: SqlStore, digests: Iterable[str]) -> list[tuple[str, str]]:
    """Return ``(run_id, artifact name)`` of run artifacts stored in one of these blobs."""
    return ErasureStore(sql).artifacts_in(digests)


def model_versions_of(sql: SqlStore, run_ids: Iterable[str]) -> list[str]:
    """Return ``name:version`` of the registered model versions these runs produced."""
    refs = ErasureStore(sql).model_versions_of(run_ids)
    return [f"{name}:{version}" for name, version in refs]
