"""Checks shared by command-line options.

Click's ``min=``/``max=`` compare, and every comparison with NaN is false, so ``--x nan`` passes
any range: a float option with a range adds ``callback=not_nan``.
"""

from __future__ import annotations

import math

import typer


def not_nan(value: float | None) -> float | None:
    """Refuse NaN for a float option (``None``, an unset optional option, passes)."""
    if value is not None and math.isnan(value):
        raise typer.BadParameter("must be a number, not NaN")
    return value
