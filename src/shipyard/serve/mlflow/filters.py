"""MLflow's search syntax, translated into Shipyard's filter language (``store.filters``).

The two languages share their shape (``metrics.rmse < 0.8 AND params.model = 'lgbm'``); what
differs is spelled here, outside single-quoted strings only: MLflow quotes odd keys with
double quotes (``tags."mlflow.runName"``), Shipyard with backticks; MLflow's ``run_name`` and
``created`` attributes are Shipyard's ``name`` and ``start_time``. Attributes Shipyard does
not keep (``user_id``, ``artifact_uri``, ``datasets.*``) are refused with a 400 that says so,
never matched silently. The translated text is then parsed by Shipyard's own parser, whose
errors name the position.
"""

from __future__ import annotations

import re

from shipyard.serve.mlflow.errors import invalid

_ATTRIBUTES = {
    "run_name": "attributes.name",
    "name": "attributes.name",
    "created": "attributes.start_time",
    "start_time": "attributes.start_time",
    "end_time": "attributes.end_time",
    "run_id": "attributes.run_id",
    "status": "attributes.status",
}
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'")
_QUOTED_KEY = re.compile(r'"([^"]*)"')
_PREFIXED = re.compile(r"(?i)(?<![\w.`])(?:attributes|attribute|attr|run)\.(\w+)")
_BARE = re.compile(r"(?i)(?<![\w.`])(run_name|created)\b")
_DATASETS = re.compile(r"(?i)(?<![\w.`])datasets?\.")


def translate(text: str) -> str:
    """Return MLflow filter (or order-by) ``text`` in Shipyard's filter language.

    Raises:
        MlflowError: The text names something Shipyard does not keep (400).
    """
    out, last = [], 0
    for match in _STRING.finditer(text):
        out.append(_translate_outside(text[last : match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(_translate_outside(text[last:]))
    return "".join(out)


def _translate_outside(part: str) -> str:
    if _DATASETS.search(part):
        raise invalid("filtering runs by datasets is not supported by Shipyard")
    part = _QUOTED_KEY.sub(lambda m: f"`{m.group(1)}`", part)
    part = _PREFIXED.sub(_attribute, part)
    return _BARE.sub(lambda m: _ATTRIBUTES[m.group(1).lower()], part)


def _attribute(match: re.Match[str]) -> str:
    name = match.group(1).lower()
    found = _ATTRIBUTES.get(name)
    if found is None:
        raise invalid(
            f"the run attribute {name!r} is not searchable in Shipyard; searchable: "
            f"{', '.join(sorted(_ATTRIBUTES))}"
        )
    return found
