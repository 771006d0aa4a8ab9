"""Chart data as compact column tables, and the `Chart` a page embeds.

A Vega-Lite dataset is a list of row objects: with the field names repeated in every row, a
study of 900 runs x 100 steps would add megabytes to its page. The page carries each table as
columns instead (text columns as a list of levels and one code per row, numbers rounded to
`DIGITS` significant digits), and `loader.js` turns them back into rows before Vega sees them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

DIGITS = 5  # a chart shows 3 or 4; the fifth keeps a tooltip's value honest to the table's


@dataclass(frozen=True)
class Chart:
    """A Vega-Lite spec whose data are named tables (`{"name": ...}` in the spec)."""
    spec: dict
    tables: dict[str, dict]
    renderer: str = "svg"  # "canvas" for charts of many thousand marks
    # Stored boundary frames the page decodes itself (charts.boundary_steps): the dataset they
    # feed, each run's artifact by "arm|seed", the signals that pick the run and the step.
    frames: dict | None = None

    def payload(self) -> dict:
        payload = {"spec": self.spec, "tables": self.tables, "renderer": self.renderer}
        if self.frames is not None:
            payload["frames"] = self.frames
        return payload


def column_table(frame: pd.DataFrame) -> dict:
    """`{"length": n, "columns": {name: values | {"levels": [...], "codes": [...]}}}`."""
    columns = {}
    for name in frame.columns:
        values = frame[name]
        if pd.api.types.is_bool_dtype(values):
            columns[str(name)] = [bool(v) for v in values]
        elif pd.api.types.is_numeric_dtype(values):
            columns[str(name)] = [_number(v) for v in values]
        else:
            text = [None if _missing(v) else str(v) for v in values]
            levels = list(dict.fromkeys(v for v in text if v is not None))
            index = {level: i for i, level in enumerate(levels)}
            columns[str(name)] = {"levels": levels,
                             "codes": [-1 if v is None else index[v] for v in text]}
    return {"length": len(frame), "columns": columns}


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _number(value):
    """A JSON number: integers as themselves, floats to DIGITS significant digits, no NaN or
    infinity (JSON has neither; a missing value is null)."""
    if _missing(value) or (isinstance(value, float) and math.isinf(value)):
        return None
    if float(value).is_integer() and abs(value) < 2 ** 53:
        return int(value)
    return float(f"{float(value):.{DIGITS}g}")
