"""``--executor`` and ``--ray-address``: where a command's trials, folds or partitions run.

The options win over ``SHIPYARD_EXECUTOR__*`` and the ``executor:`` section of shipyard.yaml:
they are set as those variables for this process before its workspace is opened, so one
precedence rule (code > environment > file) covers them.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from shipyard.core.errors import InvalidArgument

ExecutorOption = Annotated[
    str | None,
    typer.Option("--executor", help="local (this process) or ray; default: the executor setting."),
]
RayAddressOption = Annotated[
    str | None,
    typer.Option("--ray-address", help="The Ray cluster (auto, host:6379 or ray://host:10001)."),
]


def choose_executor(kind: str | None, address: str | None) -> None:
    """Make the options this process's executor settings.

    Raises:
        InvalidArgument: An executor other than local or ray.
    """
    if kind is not None:
        if kind not in ("local", "ray"):
            raise InvalidArgument("--executor is local or ray")
        os.environ["SHIPYARD_EXECUTOR__KIND"] = kind
    if address is not None:
        os.environ["SHIPYARD_EXECUTOR__ADDRESS"] = address
        os.environ.setdefault("SHIPYARD_EXECUTOR__KIND", "ray")
