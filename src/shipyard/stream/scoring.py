"""The model a consumer scores with, following its registry alias as it moves.

The stream package sits below ``serve``, so it does not import the server's fast path: the
caller passes a ``PredictorFactory`` (the CLI passes ``serve.fast_path.OnnxPredictor`` with the
native fallback, exactly as the server builds it) and a ``ModelSource`` (the server's
``RegistrySource`` satisfies it). A background thread asks the source every
``poll_interval_s`` which version the alias points to and, when it moved, builds the new model
off the hot path and swaps one reference: the next batch uses it, no restart.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable

    from shipyard.registry.bundle import Bundle
    from shipyard.registry.inference import Predictions
    from shipyard.registry.input_contract import InputContract, ModelInput

log = logging.getLogger("shipyard.stream")


class ModelSource(Protocol):
    """Where versions are resolved and loaded from (the registry)."""

    def resolve(self, model: str, alias: str) -> int:
        """Return the version ``model@alias`` points to now."""

    def load(self, model: str, version: int) -> Bundle:
        """Return the verified bundle of ``model`` version ``version``."""


class PredictorFactory(Protocol):
    """Build the fastest verified predictor of a bundle; say which engine it is."""

    def __call__(self, bundle: Bundle) -> tuple[Callable[[ModelInput], Predictions], str]:
        """Return ``(predict, engine)``."""


def native_predictor(bundle: Bundle) -> tuple[Callable[[ModelInput], Predictions], str]:
    """The bundle's own ``predict_input`` (no compiled fast path)."""
    return bundle.predict_input, "native"


@dataclass(frozen=True)
class LoadedModel:
    """One version ready to score: its contract and predictor."""

    name: str
    alias: str
    version: int
    bundle: Bundle
    contract: InputContract
    predict: Callable[[ModelInput], Predictions]
    scorer: str  # "onnx" or "native": which predictor scores it


class ModelFollower:
    """Holds the current model of ``name@alias`` and swaps it when the alias moves."""

    def __init__(
        self,
        source: ModelSource,
        name: str,
        alias: str,
        *,
        build_predictor: PredictorFactory = native_predictor,
        poll_interval_s: float = 5.0,
    ) -> None:
        """Load the alias's current version now (errors surface before consuming starts).

        Raises:
            NotFound: No such model or alias.
        """
        self.source = source
        self.name = name
        self.alias = alias
        self.build_predictor = build_predictor
        self.poll_interval_s = poll_interval_s
        self.swaps = 0
        self._current = self._load(source.resolve(name, alias))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> LoadedModel:
        """The model the next batch uses (read once per batch)."""
        return self._current

    def _load(self, version: int) -> LoadedModel:
        bundle = self.source.load(self.name, version)
        predict, engine = self.build_predictor(bundle)
        return LoadedModel(self.name, self.alias, version, bundle, bundle.contract, predict, engine)

    def refresh(self) -> bool:
        """Swap in the alias's version if it moved; return whether it did."""
        version = self.source.resolve(self.name, self.alias)
        if version == self._current.version:
            return False
        fresh = self._load(version)
        old, self._current = self._current, fresh
        self.swaps += 1
        log.info("%s@%s moved: version %s -> %s", self.name, self.alias, old.version, version)
        return True

    def start(self) -> None:
        """Start polling the source in a daemon thread."""
        self._thread = threading.Thread(target=self._watch, name="stream-alias", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.refresh()
            except Exception:  # a registry hiccup must not stop scoring with the loaded model
                log.exception("checking %s@%s for a move failed; will retry", self.name, self.alias)

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
