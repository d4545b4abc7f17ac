"""Report tables as Dagster table metadata (sortable in the UI) and headline numbers as numeric metadata (plotted
over materializations in the asset's *Plots* tab), instead of markdown alone."""

import math

import dagster as dg
import numpy as np
import pandas as pd

_KINDS = {"f": "float", "i": "int", "u": "int", "b": "bool"}


def table(frame: pd.DataFrame, rows: int = 200) -> dg.MetadataValue:
    """``frame`` (its first ``rows`` rows) as table metadata, with its column types."""
    head = frame.head(rows)
    schema = dg.TableSchema(
        columns=[dg.TableColumn(str(c), _KINDS.get(head[c].dtype.kind, "string")) for c in head.columns]
    )
    records = [dg.TableRecord({str(k): _plain(v) for k, v in r.items()}) for r in head.to_dict("records")]
    return dg.MetadataValue.table(records=records, schema=schema)


def _plain(value: object) -> str | int | float | bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer | int):
        return int(value)
    if isinstance(value, np.floating | float):
        return float(value)
    return str(value)


def numbers(values: dict[str, float]) -> dict[str, dg.MetadataValue]:
    """Headline numbers as float metadata (NaN left out: Dagster cannot plot it)."""
    return {k: dg.MetadataValue.float(float(v)) for k, v in values.items() if v is not None and np.isfinite(v)}
