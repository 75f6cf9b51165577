"""Options and checks shared by commands.

Click's ``min=``/``max=`` compare, and every comparison with NaN is false, so ``--x nan`` passes
any range: a float option with a range adds ``callback=not_nan``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

#: ``--tls-cert`` / ``--tls-key`` of the commands that serve HTTP (``serve``, ``ui``).
TlsCertOption = Annotated[
    Path | None, typer.Option(help="PEM certificate chain: serve HTTPS (with --tls-key).")
]
TlsKeyOption = Annotated[
    Path | None, typer.Option(help="PEM private key of --tls-cert (unencrypted).")
]


def not_nan(value: float | None) -> float | None:
    """Refuse NaN for a float option (``None``, an unset optional option, passes)."""
    if value is not None and math.isnan(value):
        raise typer.BadParameter("must be a number, not NaN")
    return value
