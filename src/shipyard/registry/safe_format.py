"""The trust boundary for model files: skops with an allow-list kept in code; pickle refused.

Loading a pickle is running code (RELIABILITY.md lesson 2), so a model is stored with skops, whose
file is a zip of a JSON schema plus ``.npy`` arrays and which builds objects only from types the
loader names as trusted. Which types are trusted is decided here, in ``TRUSTED_TYPES``, and never
read from the artifact (the mistake of MLflow GHSA-w582-9x45-8mpx).

``load_model`` checks, before anything from the file is constructed:

1. the bytes are not a pickle (protocols 0-5, also gzip/zlib/bz2/xz-compressed as joblib writes);
2. the skops zip passes ``archive.CheckedZip`` (the one checked zip reader: member count, names,
   ratio, uncompressed total, every member streamed and verified), no member is a zip itself,
   and each ``.npy`` header declares no more data than the member holds, so a small file cannot
   make the loader allocate gigabytes;
3. every node in the schema has a loader from ``TRUSTED_LOADERS`` and a type from
   ``TRUSTED_TYPES`` -- including the types skops would trust on its own -- and everything
   ``skops.io.get_untrusted_types`` reports is in ``TRUSTED_TYPES`` too;

and only then calls ``skops.io.loads`` with the trusted types actually present. After loading,
``tree_checks.check_tree_bounds`` verifies the node arrays of scikit-learn trees: skops itself
warns that a crafted ``Tree`` or ``TreePredictor`` passes the type check and then reads out of
bounds in ``predict`` (scikit-learn/scikit-learn#34558); a loader must not take the server down.

Boosters: LightGBM's ``Booster`` pickles its state as the native model text
(``model_to_string``) and XGBoost's as its own serialization buffer (UBJSON model + config); skops
stores both through those ``__getstate__``/``__setstate__`` hooks, so the booster is parsed by the
library's own C parser from its own format -- data, never code. They therefore travel inside
``model.skops`` rather than as separate members. XGBoost only promises that buffer across the same
version, which is why the bundle records the package versions it needs.

``TRUSTED_TYPES`` was derived empirically: every pipeline the trainer builds (each estimator and
task, each categorical encoding, with and without scaling, class weights, the three samplers and
early stopping) was fitted on a small frame and dumped; the list is the union of the types in
those files. A new estimator or library version that needs another type makes ``dump_model``
refuse it with the type's name -- review it, then add it here.
"""

from __future__ import annotations

import bz2
import io
import json
import lzma
import pickletools
import zlib
from typing import Any

import numpy as np

from shipyard.core.errors import IntegrityFailure, InvalidArgument, InvalidData
from shipyard.registry.archive import DEFAULT_MAX_RATIO, CheckedZip, ZipLimits
from shipyard.registry.tree_checks import check_tree_bounds

TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "builtins.bytearray",
        "builtins.dict",
        # Plain integers: LightGBM keeps the ``categorical_feature`` positions it was fitted
        # with as a list of ints (native categories, issue 16); an int runs no code.
        "builtins.int",
        "builtins.list",
        "builtins.slice",
        "builtins.str",
        "builtins.tuple",
        "collections.OrderedDict",
        "collections.defaultdict",
        "imblearn.over_sampling._random_over_sampler.RandomOverSampler",
        "imblearn.over_sampling._smote.base.SMOTE",
        "imblearn.pipeline.Pipeline",
        "imblearn.under_sampling._prototype_selection._random_under_sampler.RandomUnderSampler",
        "lightgbm.basic.Booster",
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
        "numpy.dtype",
        "numpy.float64",
        "numpy.int64",
        "numpy.ndarray",
        "numpy.random._generator.Generator",
        "numpy.uint64",
        # Our own step: plain dicts of floats and strings, no code (train/cleaning.py).
        "shipyard.train.cleaning.TrainingRowCleaner",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss._loss.CyHalfMultinomialLoss",
        "sklearn._loss._loss.CyHalfSquaredError",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.RandomForestRegressor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.linear_model._base.LinearRegression",
        "sklearn.linear_model._coordinate_descent.ElasticNet",
        "sklearn.linear_model._coordinate_descent.Lasso",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model._ridge.Ridge",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.model_selection._split.KFold",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._unsupervised.NearestNeighbors",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._encoders.OrdinalEncoder",
        "sklearn.preprocessing._label.LabelEncoder",
        "sklearn.preprocessing._target_encoder.TargetEncoder",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._tree.Tree",
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
    }
)

#: The skops node kinds those pipelines use. Function, method, partial, operator and
#: reduce-by-constructor nodes are absent on purpose: each can call something by name.
TRUSTED_LOADERS: frozenset[str] = frozenset(
    {
        "BytearrayNode",
        "DTypeNode",
        "DefaultDictNode",
        "DictNode",
        "JsonNode",
        "ListNode",
        "LossNode",
        "NdArrayNode",
        "ObjectNode",
        "RandomGeneratorNode",
        "SliceNode",
        "TreeNode",
        "TupleNode",
        "TypeNode",
    }
)

MAX_MODEL_MEMBERS = 200_000
MAX_MODEL_UNCOMPRESSED = 1 << 30
_HEADER_SCAN_BYTES = 1 << 16
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_MAX_SCHEMA_BYTES = 256 << 20
_SCAN_BYTES = 1 << 20
_DECOMPRESSED_SCAN = 1 << 16
# Opcodes a protocol 0/1 pickle starts with (protocol 2+ always starts with PROTO, b"\x80").
_PICKLE_STARTS = frozenset(b"(}])cilNIJKMLFGSTUVX")
# A stream that runs out of bytes is a truncated pickle only after this many well-formed opcodes
# (fewer is too easily matched by other binary data; a prefix that short does little anyway).
_MIN_TRUNCATED_OPS = 4
_EXHAUSTED = ("exhausted", "not enough data", "only", "no newline", "remain")


# -- pickle detection ------------------------------------------------------------------------


def looks_like_pickle(data: bytes) -> bool:
    """Tell whether ``data`` is (or starts like) a pickle, even compressed the way joblib does.

    Protocols 2-5 start with the PROTO opcode (``0x80`` and the protocol number). Protocols 0
    and 1 have no header, so the opcode stream is disassembled with ``pickletools`` (which reads
    opcodes without executing them): a stream that reaches STOP, or that starts with a typical
    first opcode and runs out of bytes after several well-formed opcodes (a truncated pickle
    still runs what it holds), counts as a pickle. gzip, zlib, bz2, xz and lzma-alone data are
    decompressed (at most 64 KiB) and checked the same way.

    Args:
        data: The bytes to check; only their start is read.

    Returns:
        True when the bytes would be read by ``pickle.load``, or could be a truncated pickle.
    """
    head = bytes(data[:_SCAN_BYTES])
    if _is_pickle(head):
        return True
    inner = _decompressed_prefix(head)
    return inner is not None and _is_pickle(inner)


def _is_pickle(head: bytes) -> bool:
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return True
    if not head or head[0] not in _PICKLE_STARTS:
        return False
    out, stream = io.StringIO(), io.BytesIO(head)
    try:
        pickletools.dis(stream, out=out)
    except ValueError as e:
        ops = out.getvalue().count("\n")
        exhausted = stream.tell() >= len(head) or any(s in str(e) for s in _EXHAUSTED)
        return exhausted and ops >= _MIN_TRUNCATED_OPS
    except Exception:  # any other disassembly failure means: not a pickle
        return False
    return True


def _decompressed_prefix(head: bytes) -> bytes | None:
    """Return the first 64 KiB of ``head`` decompressed, if it is compressed data."""
    decompress: Any = None
    if head.startswith(b"\x1f\x8b"):
        decompress = zlib.decompressobj(wbits=31).decompress
    elif len(head) >= 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0:
        decompress = zlib.decompressobj().decompress
    elif head.startswith(b"BZh"):
        decompress = bz2.BZ2Decompressor().decompress
    elif head.startswith(b"\xfd7zXZ\x00"):
        decompress = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress
    elif head.startswith(b"\x5d\x00\x00"):
        decompress = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE).decompress
    if decompress is None:
        return None
    try:
        return bytes(decompress(head, max_length=_DECOMPRESSED_SCAN))
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return None


# -- auditing a skops file -------------------------------------------------------------------


def audit(
    data: bytes,
    *,
    source: str = "model file",
    max_members: int = MAX_MODEL_MEMBERS,
    max_uncompressed: int = MAX_MODEL_UNCOMPRESSED,
    max_ratio: float = DEFAULT_MAX_RATIO,
) -> set[str]:
    """Return every type a skops file would construct, constructing nothing.

    The schema is walked first; a node kind outside ``TRUSTED_LOADERS`` is reported as
    ``skops:<kind>`` (never a trusted name). Only when everything the walk found is trusted is
    the file also given to ``skops.io.get_untrusted_types``, whose findings are added.

    Args:
        data: The skops file.
        source: What to call the file in error messages.
        max_members: Most zip members accepted.
        max_uncompressed: Most bytes the members may hold once decompressed.
        max_ratio: Largest compression ratio of one member (``archive.ZipLimits``).

    Raises:
        IntegrityFailure: The bytes are a pickle, or not a bounded, well-formed skops zip (read
            by ``archive.CheckedZip``, every member streamed and verified, none a zip itself).
    """
    if looks_like_pickle(data):
        raise IntegrityFailure(
            f"{source} is a pickle, which Shipyard never loads because loading a pickle runs "
            "code; nothing was loaded. Save the model with shipyard (skops format) instead"
        )
    try:
        archive = CheckedZip(data, source, ZipLimits(max_members, max_uncompressed, max_ratio))
        for name in archive:
            _check_member(archive, name, source)
        schema = _read_schema(archive, source)
    except InvalidData as e:
        # The archive's reasons (not a zip, a bomb, a name) are integrity failures here.
        done = "" if e.message.endswith("nothing was loaded") else "; nothing was loaded"
        raise IntegrityFailure(f"{e.message}{done}") from e
    found, loaders = _schema_types(schema)
    found |= {f"skops:{loader}" for loader in loaders - TRUSTED_LOADERS}
    if not found <= TRUSTED_TYPES:
        return found
    try:
        import skops.io as sio

        found |= set(sio.get_untrusted_types(data=data))
    except Exception as e:  # skops raises many kinds on a malformed schema
        raise IntegrityFailure(
            f"{source} is not a readable skops file ({type(e).__name__}: {e}); nothing was loaded"
        ) from e
    return found


def _check_member(archive: CheckedZip, name: str, source: str) -> None:
    """Stream one member in full (size and CRC verified) and check what its start says.

    An array's header must declare no more data than the member holds and no Python objects;
    no member may be a zip itself (``numpy.load`` would open one as an ``.npz``, and a zip in
    a zip is how recursive bombs nest), so the model file is the last level Shipyard unpacks.
    """
    head = b""
    for chunk in archive.stream(name):
        if len(head) < _HEADER_SCAN_BYTES:
            head += chunk[: _HEADER_SCAN_BYTES - len(head)]
    if head.startswith(_ZIP_MAGIC):
        raise IntegrityFailure(
            f"{source}: member {name} is itself a zip; nested archives are refused and nothing "
            "was loaded"
        )
    if name.endswith(".npy"):
        _check_npy_header(head, name, archive.size(name), source)


def _check_npy_header(head: bytes, name: str, size: int, source: str) -> None:
    """Refuse an array whose header declares more data than its member holds."""
    from numpy.lib import format as npy

    stream = io.BytesIO(head)
    try:
        version = npy.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = npy.read_array_header_1_0(stream)
        else:
            shape, _, dtype = npy.read_array_header_2_0(stream)
        offset = stream.tell()
    except (ValueError, OSError, EOFError) as e:
        raise IntegrityFailure(
            f"{source}: array {name} has an unreadable header ({e}); nothing was loaded"
        ) from e
    if dtype.hasobject:
        raise IntegrityFailure(f"{source}: array {name} holds Python objects; nothing was loaded")
    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if declared > size - offset:
        raise IntegrityFailure(
            f"{source}: array {name} declares {declared} bytes but holds {size - offset}; "
            "nothing was loaded"
        )


def _read_schema(archive: CheckedZip, source: str) -> Any:
    if "schema.json" not in archive:
        raise IntegrityFailure(
            f"{source} has no schema.json, so it is not a skops file; nothing was loaded"
        )
    if archive.size("schema.json") > _MAX_SCHEMA_BYTES:
        raise IntegrityFailure(f"{source}: schema.json is too large; nothing was loaded")
    try:
        return json.loads(archive["schema.json"])
    except (ValueError, RecursionError) as e:
        raise IntegrityFailure(
            f"{source}: schema.json does not parse ({type(e).__name__}); nothing was loaded"
        ) from e


def _schema_types(schema: Any) -> tuple[set[str], set[str]]:
    """Collect ``module.class`` and the loader of every node (iteratively: depth is unbounded)."""
    types: set[str] = set()
    loaders: set[str] = set()
    stack = [schema]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__loader__" in item:
                loaders.add(str(item.get("__loader__")))
                types.add(f"{item.get('__module__')}.{item.get('__class__')}")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return types, loaders


def untrusted_types(data: bytes) -> list[str]:
    """Return the types in a skops file that Shipyard does not trust, sorted (none: loadable).

    Raises:
        IntegrityFailure: The bytes are not a well-formed, bounded skops file.
    """
    return sorted(audit(data) - TRUSTED_TYPES)


# -- dump and load ---------------------------------------------------------------------------


def dump_model(model: Any) -> bytes:
    """Serialize ``model`` with skops, refusing anything ``load_model`` would refuse.

    Raises:
        InvalidArgument: The model holds a type outside ``TRUSTED_TYPES`` (named in the
            message) or one skops cannot store; a bundle we would not read is never written.
    """
    import skops.io as sio

    try:
        data = bytes(sio.dumps(model))
    except Exception as e:  # skops raises TypeError and its own kinds
        raise InvalidArgument(
            f"the model cannot be stored in the safe skops format: {type(e).__name__}: {e}"
        ) from e
    try:
        outside = untrusted_types(data)
    except IntegrityFailure as e:
        raise InvalidArgument(f"the model cannot be stored safely: {e}") from e
    if outside:
        raise InvalidArgument(
            f"the model contains types Shipyard does not load: {', '.join(outside)}; use the "
            "estimators Shipyard supports, or review these types and add them to "
            "shipyard.registry.safe_format.TRUSTED_TYPES"
        )
    return data


def load_model(
    data: bytes,
    *,
    source: str = "model file",
    max_members: int = MAX_MODEL_MEMBERS,
    max_uncompressed: int = MAX_MODEL_UNCOMPRESSED,
    max_ratio: float = DEFAULT_MAX_RATIO,
) -> Any:
    """Load a skops model after checking every type it holds against ``TRUSTED_TYPES``.

    Args:
        data: The skops file.
        source: What to call the file in error messages (the bundle and member).
        max_members: Most zip members accepted.
        max_uncompressed: Most bytes the members may hold once decompressed.
        max_ratio: Largest compression ratio of one member (``archive.ZipLimits``).

    Raises:
        IntegrityFailure: A pickle, a malformed or oversized file, a type outside the
            allow-list (all named), or tree node indices out of bounds. Nothing from the file
            is constructed before the type check passes.
    """
    present = audit(
        data,
        source=source,
        max_members=max_members,
        max_uncompressed=max_uncompressed,
        max_ratio=max_ratio,
    )
    outside = sorted(present - TRUSTED_TYPES)
    if outside:
        raise IntegrityFailure(
            f"{source} contains types outside Shipyard's allow-list: {', '.join(outside)}; "
            "the model was not loaded. A file that needs them was not written by Shipyard, "
            "or was tampered with"
        )
    import skops.io as sio

    try:
        model = sio.loads(data, trusted=sorted(present))
    except Exception as e:  # construction errors of any kind: the file is inconsistent
        raise IntegrityFailure(
            f"{source} could not be loaded ({type(e).__name__}: {e}); it is corrupt or was "
            "written by incompatible library versions (see the bundle's requirements)"
        ) from e
    check_tree_bounds(model, source=source)
    return model
