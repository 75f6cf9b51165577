"""The commented starter ``shipyard.yaml`` that ``shipyard init`` writes."""

from __future__ import annotations

STARTER = """\
# shipyard.yaml — the project file. Every section is optional; docs/data.md explains each field.
# Paths are relative to this file. Values like ${ENV_NAME} in HTTP headers are read from the
# environment at run time and never stored.

# Where runs, datasets and artifacts are kept (default: .shipyard/ next to this file).
# workspace:
#   store_url: postgresql+psycopg://user@db.example.com/shipyard
#   artifact_root: /mnt/shared/shipyard-artifacts

sources:
  orders:
    uri: data/orders.csv            # a file, a glob (data/orders-*.csv), a SQL URL or an HTTP API
    csv: {delimiter: ",", has_header: true}
    watermark: updated_at           # read only rows newer than the last successful run
    on_schema_drift: fail           # or: adapt (warn and go on)
    harmonize:
      rename: {OrderID: order_id}
      cast:
        order_id: int64
        amount: float64
        updated_at: {type: datetime, format: "%Y-%m-%d %H:%M:%S"}

contract:
  policy: quarantine                # default per check: fail | quarantine | warn
  columns:
    order_id: {type: int64, nullable: false, unique: true}
    amount: {type: float64, min: 0}
    updated_at: {type: datetime, nullable: false}
    returned: {type: bool, nullable: false}
  row_count: {min: 1}

steps:
  - clean:
      dedup: {key: [order_id], keep_latest_by: updated_at}
      outliers: {amount: {method: iqr, k: 3, action: clip}}
  - features:
      order_month: {date_part: {column: updated_at, part: month}}
      amount_log: {log1p: amount}

# Train a model on the dataset the steps above produce (docs/training.md). A target is all it
# needs: the other columns become features, the rows are split train / validation / test, and
# the default model is fitted, scored once on the test rows with 95% intervals and bundled.
train:
  target: returned
  exclude: [order_id]               # identifiers predict nothing that generalizes
  register: {model: orders}         # add `promote_to: production` to ask the gate to promote
"""
