"""Model bundles: one zip file holding a fitted pipeline and everything needed to trust it later.

Members::

    manifest.json               BundleManifest: contract, classes, threshold, metrics, lineage,
                                requirements, and the SHA-256 of every other member
    model.skops                 the fitted pipeline, in the skops format (see ``safe_format``)
    reference.json              optional reference profile of the training data (drift)
    reference_sample.parquet    optional bounded sample of the training features (drift)
    plots/*.png, card.md, ...   optional extra files

The zip is written with the manifest first, the other members sorted and fixed timestamps (skops
names its arrays by object id, so two writes of one model still differ in ``model.skops``), and
atomically (temp file, fsync, rename, fsync of the directory; RELIABILITY.md lesson 5); the
returned SHA-256 is what a registry records. ``read_bundle`` executes
nothing from the file until every check has passed, in this order: size limit, whole-file
SHA-256 against the registered one, not a pickle, a valid zip whose directory passes
``archive.CheckedZip`` (member count, safe and unique names, no symlinks, no overlapping members,
bounded ratio and uncompressed total: zip bombs), a manifest that parses, no unlisted member,
every member's SHA-256 as listed (streamed, so a member that lies about its size is refused at
the first byte too many), no member that is a pickle, and every type in the model trusted. Only
then is the model loaded.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from shipyard.core.errors import ArtifactNotFound, IntegrityFailure, InvalidArgument, InvalidData
from shipyard.registry.archive import (
    DEFAULT_MAX_RATIO,
    CheckedZip,
    ZipLimits,
    read_bounded,
    write_atomic,
    zip_members,
)
from shipyard.registry.inference import (
    Predictions,
    check_input,
    feature_roles,
    predict,
    predict_input,
)
from shipyard.registry.input_contract import InputContract
from shipyard.registry.manifest import BundleManifest
from shipyard.registry.safe_format import dump_model, load_model, looks_like_pickle
from shipyard.store.artifacts.names import validate_artifact_name

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import pandas as pd
    import polars as pl

    from shipyard.registry.input_contract import ModelInput
    from shipyard.train.preprocess import Columns

__all__ = [
    "MANIFEST",
    "MODEL",
    "REFERENCE",
    "REFERENCE_SAMPLE",
    "Bundle",
    "Predictions",
    "read_bundle",
    "requirements_for",
    "write_bundle",
]

MANIFEST = "manifest.json"
MODEL = "model.skops"
REFERENCE = "reference.json"
REFERENCE_SAMPLE = "reference_sample.parquet"
RESERVED = frozenset({MANIFEST, MODEL, REFERENCE, REFERENCE_SAMPLE})
# The defaults of ``RegistrySettings`` (core/settings.py), which the registry passes in.
DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_MAX_MEMBERS = 10_000
DEFAULT_MAX_UNCOMPRESSED = 1 << 30
_MAX_MANIFEST_BYTES = 64 << 20
_PICKLE_SCAN_BYTES = 1 << 20
# Import name -> the distribution users install, for the libraries a model may need.
_DISTRIBUTIONS = {
    "sklearn": "scikit-learn",
    "numpy": "numpy",
    "scipy": "scipy",
    "pandas": "pandas",
    "skops": "skops",
    "imblearn": "imbalanced-learn",
    "lightgbm": "lightgbm",
    "xgboost": "xgboost",
}
_ALWAYS = ("sklearn", "numpy", "scipy", "pandas", "skops")


class Bundle:
    """A bundle that passed every check of ``read_bundle``, with its model loaded.

    Attributes:
        manifest: The parsed manifest.
        model: The fitted pipeline.
        sha256: SHA-256 of the whole bundle file.
    """

    def __init__(
        self,
        manifest: BundleManifest,
        model: Any,
        sha256: str,
        members: Mapping[str, bytes],
        *,
        load: Callable[[], Any] | None = None,
    ) -> None:
        self.manifest = manifest
        self._model = model
        self._load = load  # the deferred model's loader (``read_bundle(defer_model=True)``)
        self.sha256 = sha256
        # A CheckedZip (read_bundle) decompresses a member when asked; no copy is taken.
        self._members = members
        self._contract: InputContract | None = None
        self._roles: Columns | None = None

    @property
    def model(self) -> Any:
        """The fitted pipeline; a deferred one is loaded (and its types checked) now, once."""
        if self._load is not None:
            self._model, self._load = self._load(), None
        return self._model

    @property
    def model_loaded(self) -> bool:
        """Whether the model is in memory (a deferred bundle loads it on first use)."""
        return self._load is None

    def __repr__(self) -> str:
        name, task = self.manifest.name, self.manifest.task
        return f"Bundle(name={name!r}, task={task}, sha256={self.sha256[:12]})"

    def names(self) -> list[str]:
        """Member names, sorted (``manifest.json`` included)."""
        return sorted(self._members)

    def file(self, name: str) -> bytes:
        """Return a member's bytes (already checked against the manifest).

        Raises:
            ArtifactNotFound: The bundle has no such member (the message lists those it has).
        """
        try:
            return self._members[name]
        except KeyError:
            raise ArtifactNotFound(
                f"bundle {self.sha256[:12]} has no member {name!r}; it has: "
                + ", ".join(self.names())
            ) from None

    def reference(self) -> dict[str, Any] | None:
        """The reference profile of the training data, or None when the bundle has none."""
        data = self._members.get(REFERENCE)
        if data is None:
            return None
        try:
            value = json.loads(data)
        except ValueError as e:
            raise IntegrityFailure(
                f"bundle {self.sha256[:12]}: {REFERENCE} is not JSON: {e}"
            ) from e
        if not isinstance(value, dict):
            raise IntegrityFailure(f"bundle {self.sha256[:12]}: {REFERENCE} is not an object")
        return value

    def reference_sample(self) -> pl.DataFrame | None:
        """The bounded sample of training features, or None when the bundle has none."""
        import polars as pl

        data = self._members.get(REFERENCE_SAMPLE)
        if data is None:
            return None
        try:
            return pl.read_parquet(io.BytesIO(data))
        except (pl.exceptions.PolarsError, OSError) as e:
            raise IntegrityFailure(
                f"bundle {self.sha256[:12]}: {REFERENCE_SAMPLE} is not readable Parquet: {e}"
            ) from e

    def plots(self) -> dict[str, bytes]:
        """The ``plots/`` members, keyed by name without the ``plots/`` prefix."""
        return {
            name.removeprefix("plots/"): self._members[name]
            for name in sorted(self._members)
            if name.startswith("plots/")
        }

    @property
    def contract(self) -> InputContract:
        """The input contract compiled from the manifest (once per loaded bundle)."""
        if self._contract is None:
            self._contract = InputContract(self.manifest)
        return self._contract

    @property
    def roles(self) -> Columns:
        """The features split into numeric and categorical as the model encodes them."""
        if self._roles is None:
            self._roles = feature_roles(self.manifest, self.model)
        return self._roles

    def check_input(self, frame: pl.DataFrame) -> list[str]:
        """List what is wrong with ``frame`` as model input; empty when it is fine.

        One message per field and problem, naming the rows (``field: problem (rows ...)``),
        as HTTP serving and batch scoring word them. Categories never seen in training are
        listed even when the manifest's policy scores them as unknown.
        """
        return [p.message for p in check_input(self.manifest, frame)]

    def predict(
        self,
        frame: pl.DataFrame | pd.DataFrame,
        *,
        unseen_categories: Literal["error", "unknown"] | None = None,
    ) -> Predictions:
        """Predict labels (and class probabilities) for ``frame``.

        The frame is read through ``contract`` (columns other than the features are ignored);
        ``unseen_categories`` overrides the manifest's policy for this call. Classification
        maps the model's codes to ``manifest.classes``; binary models apply
        ``manifest.threshold`` (0.5 when None) to ``proba[:, 1]``.

        Raises:
            ContractViolation: A feature column is missing or some values break the contract
                (an ``InvalidData`` whose message names the fields and rows).
        """
        contract = self.contract
        if unseen_categories is not None and unseen_categories != contract.policy.unseen_categories:
            contract = contract.with_policy(unseen_categories=unseen_categories)
        return predict(self.manifest, self.model, frame, contract=contract)

    def predict_input(self, inputs: ModelInput) -> Predictions:
        """Predict rows already checked and decoded by ``contract`` (the serving path)."""
        return predict_input(self.manifest, self.model, inputs, self.roles)


# -- writing -----------------------------------------------------------------------------------


def requirements_for(model: Any) -> dict[str, str]:
    """Return the Python and package versions needed to load ``model``.

    Always Python, scikit-learn, NumPy, SciPy, pandas and skops; imbalanced-learn, LightGBM and
    XGBoost when an object of theirs is part of the model (found through ``get_params``).
    """
    import platform

    roots = {type(model).__module__.partition(".")[0]}
    get_params = getattr(model, "get_params", None)
    if callable(get_params):
        roots |= {type(v).__module__.partition(".")[0] for v in get_params(deep=True).values()}
    out = {"python": platform.python_version()}
    for module in [*_ALWAYS, *sorted(roots & {"imblearn", "lightgbm", "xgboost"})]:
        out[_DISTRIBUTIONS[module]] = str(importlib.import_module(module).__version__)
    return out


def write_bundle(
    path: Path,
    model: Any,
    manifest: BundleManifest,
    *,
    reference: Mapping[str, Any] | None = None,
    reference_sample: pl.DataFrame | None = None,
    extra_files: Mapping[str, bytes] | None = None,
) -> str:
    """Write ``model`` and ``manifest`` as one bundle file at ``path``, atomically.

    The written manifest gets ``files`` (SHA-256 of each member) and ``requirements``
    (``requirements_for(model)`` over any the caller gave).

    Args:
        path: Destination file; its directory is created if needed.
        model: The fitted pipeline.
        manifest: The manifest; must carry the input contract.
        reference: Reference profile, stored as ``reference.json`` (plain JSON, no NaN).
        reference_sample: Sample of training features, stored as Parquet.
        extra_files: More members by name (``plots/roc.png``, ``card.md``).

    Returns:
        The SHA-256 of the whole bundle file.

    Raises:
        InvalidArgument: No features, a model that disagrees with the manifest, a type outside
            the skops allow-list, a bad or reserved member name, a pickle among the extra
            files, or a reference that is not plain JSON.
    """
    if not manifest.features:
        raise InvalidArgument(
            "a bundle must carry its input contract: the manifest lists no features"
        )
    _check_model_matches(model, manifest)
    members: dict[str, bytes] = {MODEL: dump_model(model)}
    if reference is not None:
        try:
            members[REFERENCE] = json.dumps(reference, allow_nan=False, sort_keys=True).encode()
        except (TypeError, ValueError) as e:
            raise InvalidArgument(f"the reference profile is not plain JSON: {e}") from e
    if reference_sample is not None:
        buffer = io.BytesIO()
        reference_sample.write_parquet(buffer)
        members[REFERENCE_SAMPLE] = buffer.getvalue()
    for name, data in (extra_files or {}).items():
        _check_extra(name, data)
        members[name] = bytes(data)
    files = {name: hashlib.sha256(data).hexdigest() for name, data in sorted(members.items())}
    full = BundleManifest.model_validate(
        {
            **manifest.model_dump(),
            "files": files,
            "requirements": {**manifest.requirements, **requirements_for(model)},
        }
    )
    members[MANIFEST] = full.model_dump_json(indent=2).encode()
    data = zip_members(members, first=MANIFEST)
    write_atomic(Path(path), data)
    return hashlib.sha256(data).hexdigest()


def _check_model_matches(model: Any, manifest: BundleManifest) -> None:
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is not None and [str(c) for c in fitted] != manifest.feature_names:
        raise InvalidArgument(
            f"the manifest's features {manifest.feature_names} differ from the columns the "
            f"model was fitted on {[str(c) for c in fitted]} (names and order must match)"
        )
    if manifest.task == "regression":
        return
    if not callable(getattr(model, "predict_proba", None)):
        raise InvalidArgument(f"a {manifest.task} model must have predict_proba")
    classes = getattr(model, "classes_", None)
    if (
        classes is not None
        and manifest.classes is not None
        and len(classes) != len(manifest.classes)
    ):
        raise InvalidArgument(
            f"the model predicts {len(classes)} classes but the manifest lists "
            f"{len(manifest.classes)}"
        )


def _check_extra(name: str, data: bytes) -> None:
    validate_artifact_name(name)
    if name in RESERVED:
        raise InvalidArgument(f"extra file {name!r} would replace a bundle member of that name")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidArgument(f"extra file {name!r} must be bytes, not {type(data).__name__}")
    if looks_like_pickle(bytes(data)):
        raise InvalidArgument(
            f"extra file {name!r} is a pickle; bundles never carry pickles (loading one runs code)"
        )


# -- reading -----------------------------------------------------------------------------------


def read_bundle(
    source: Path | bytes,
    *,
    expected_sha256: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
    max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED,
    max_ratio: float = DEFAULT_MAX_RATIO,
    label: str | None = None,
    defer_model: bool = False,
) -> Bundle:
    """Check a bundle thoroughly, then load it; nothing from the file runs before the checks.

    Memory stays of the order of the file plus its model: members are streamed through their
    checksum in chunks, and only the manifest and ``model.skops`` are held whole; the other
    members are decompressed again when asked for (``Bundle.file``).

    Args:
        source: The bundle file, or its bytes.
        expected_sha256: The SHA-256 recorded when the bundle was registered.
        max_bytes: Largest bundle file accepted.
        max_members: Most zip members accepted (in the bundle and in the model file).
        max_uncompressed: Most bytes the members may expand to (in the bundle and the model).
        max_ratio: Largest compression ratio of one member (beyond 1 MiB expanded).
        label: What to call the bundle in messages (default: its path, or ``(bytes)``).
        defer_model: Check everything but the model's own types now, and load the model
            (checking its types first) on first use of ``Bundle.model``. A server whose
            verified ONNX export is cached never needs the native model, nor the libraries
            it is made of (issue #17: start-up); the bundle's checksums still ran.

    Raises:
        InvalidData: Not a readable bundle: empty, too large, not a zip or truncated, unsafe or
            duplicate member names, symlink members, a zip bomb (declared, overlapping, by
            ratio, or lying about its size), an invalid manifest.
        IntegrityFailure: Modified after registration (whole-file or per-member checksum), a
            pickle anywhere, a type outside the allow-list, a corrupt model.
    """
    if label is None:
        label = str(source) if isinstance(source, Path) else "(bytes)"
    data = read_bounded(source, label, max_bytes)
    sha = hashlib.sha256(data).hexdigest()
    if expected_sha256 is not None and sha != expected_sha256.lower():
        raise IntegrityFailure(
            f"bundle {label} was modified after it was registered: its SHA-256 is {sha}, the "
            f"registry recorded {expected_sha256}; nothing was loaded. Restore the file from a "
            "backup or register the model again"
        )
    if looks_like_pickle(data):
        raise IntegrityFailure(
            f"bundle {label} is a pickle, not a bundle; Shipyard never loads pickles (loading "
            "one runs code) and nothing was loaded"
        )
    limits = ZipLimits(max_members, max_uncompressed, max_ratio)
    members = CheckedZip(data, f"bundle {label}", limits)
    manifest = _parse_manifest(members, label)
    model_bytes = _check_members(manifest, members, label)

    def load() -> Any:
        return load_model(
            model_bytes,
            source=f"bundle {label}: {MODEL}",
            max_members=max_members,
            max_uncompressed=max_uncompressed,
            max_ratio=max_ratio,
        )

    if defer_model:
        return Bundle(manifest, None, sha, members, load=load)
    return Bundle(manifest, load(), sha, members)


def _parse_manifest(members: CheckedZip, label: str) -> BundleManifest:
    if MANIFEST not in members:
        raise InvalidData(f"bundle {label} has no {MANIFEST}; it is not a Shipyard bundle")
    if members.size(MANIFEST) > _MAX_MANIFEST_BYTES:
        raise InvalidData(f"bundle {label}: {MANIFEST} is larger than {_MAX_MANIFEST_BYTES} bytes")
    raw = members[MANIFEST]
    try:
        return BundleManifest.model_validate_json(raw)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or '(root)'}: {err['msg']}" for err in e.errors()[:10]
        )
        raise InvalidData(f"bundle {label}: {MANIFEST} is invalid: {problems}") from e


def _check_members(manifest: BundleManifest, members: CheckedZip, label: str) -> bytes:
    """Stream every member through its checksum and the pickle check; return the model's bytes.

    The names are compared first, so an unlisted member is refused before it is decompressed.
    """
    present = set(members) - {MANIFEST}
    listed = set(manifest.files)
    if MODEL not in listed:
        raise IntegrityFailure(f"bundle {label}: the manifest lists no {MODEL}")
    missing = sorted(listed - present)
    if missing:
        raise IntegrityFailure(
            f"bundle {label}: member(s) {', '.join(missing)} listed in the manifest are missing"
        )
    unlisted = sorted(present - listed)
    if unlisted:
        raise IntegrityFailure(
            f"bundle {label}: member(s) {', '.join(unlisted)} are not listed in the manifest; "
            "the bundle was modified and nothing was loaded"
        )
    model = b""
    for name in sorted(listed):
        digest, head, kept = hashlib.sha256(), b"", []
        for chunk in members.stream(name):
            digest.update(chunk)
            if len(head) < _PICKLE_SCAN_BYTES:
                head += chunk[: _PICKLE_SCAN_BYTES - len(head)]
            if name == MODEL:
                kept.append(chunk)
        actual = digest.hexdigest()
        if actual != manifest.files[name].lower():
            raise IntegrityFailure(
                f"bundle {label}: member {name!r} was modified: its SHA-256 is {actual}, the "
                f"manifest says {manifest.files[name]}; nothing was loaded"
            )
        if name == MODEL:
            model = b"".join(kept)
        elif looks_like_pickle(head):
            raise IntegrityFailure(
                f"bundle {label}: member {name!r} is a pickle; bundles never carry pickles and "
                "nothing was loaded"
            )
    return model
