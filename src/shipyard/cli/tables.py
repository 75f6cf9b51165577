"""Tables that stay readable in a narrow terminal (issue #16: an 80-column terminal).

Left to itself, Rich squeezes every column of a table that is too wide by the same share and
wraps or cuts what no longer fits, so at 80 columns a run id becomes ``ru…`` and a date spills
onto a second line. ``fit`` decides instead, before printing:

1. *key* columns (ids, names, versions: what a person copies into the next command) keep their
   full width and never wrap;
2. *optional* columns are dropped, in the order given, until the rest fits;
3. what is still too wide is shortened with ``…``, one line per row, the widest columns first,
   never below the width of their header.

``--json`` is the way to every value of every column, whatever the terminal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console
    from rich.table import Column, Table

#: A column is never shortened below this many cells (its header may be shorter).
MIN_SHORTENED = 6


def fit(
    table: Table,
    console: Console,
    *,
    keys: Sequence[str] = (),
    optional: Sequence[str] = (),
) -> Table:
    """Fit ``table`` into ``console``'s width (see the module docstring); return it.

    Args:
        table: A table with every row added.
        console: Where it will be printed (its width is the limit).
        keys: Headers of the columns whose values must stay whole.
        optional: Headers of the columns to drop, first to last, while the table is too wide.
    """
    width = console.width
    for column in table.columns:
        column.no_wrap = True
        column.overflow = "ellipsis"
    natural = {id(c): _natural_width(c) for c in table.columns}
    for header in optional:
        if _total(table, natural) <= width:
            break
        table.columns[:] = [c for c in table.columns if str(c.header) != header]
    for column in table.columns:
        if str(column.header) in keys:
            column.min_width = natural[id(column)]
    excess = _total(table, natural) - width
    widths = {id(c): natural[id(c)] for c in table.columns}
    others = [c for c in table.columns if str(c.header) not in keys]
    excess = _shorten(others, widths, excess)
    # Last resort, when the key columns alone are wider than the terminal: a row that runs
    # off the screen is worse than a shortened value (``--json`` has them whole).
    _shorten([c for c in table.columns if str(c.header) in keys], widths, excess)
    for column in table.columns:
        if widths[id(column)] < natural[id(column)]:
            column.min_width = None
            column.max_width = widths[id(column)]
    return table


def _shorten(columns: list[Column], widths: dict[int, int], excess: int) -> int:
    """Take ``excess`` cells from ``columns``, one at a time from the widest; return the rest."""
    columns = list(columns)
    while excess > 0 and columns:
        widest = max(columns, key=lambda c: widths[id(c)])
        if widths[id(widest)] <= max(len(str(widest.header)), MIN_SHORTENED):
            columns.remove(widest)
            continue
        widths[id(widest)] -= 1
        excess -= 1
    return excess


def _natural_width(column: Column) -> int:
    """The cells the widest value (or the header) takes on one line."""
    cells = [Text.from_markup(str(column.header)).cell_len]
    for cell in column.cells:
        text = Text.from_markup(cell) if isinstance(cell, str) else cell
        cells.append(text.cell_len if isinstance(text, Text) else len(str(cell)))
    return max(cells)


def _total(table: Table, natural: dict[int, int]) -> int:
    """The table's width: the columns, one cell of padding each side, and the rules."""
    columns = table.columns
    padding = 2 * len(columns)
    rules = (len(columns) + 1) if table.box is not None else 0
    return sum(natural[id(c)] for c in columns) + padding + rules
