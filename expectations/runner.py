"""One small runner for Great Expectations 1.x suites on pandas frames, returning a typed result.

Ephemeral context -> pandas data source -> dataframe asset -> whole-dataframe batch definition ->
``batch.validate(suite, result_format=...)``. The GX result is mapped to frozen dataclasses that
name each expectation by a stable human name and show the failing rows with their
``source_file``/``source_line``, so a person can open the file at the row that failed.

Great Expectations takes seconds to import, so it is imported inside the functions that need it,
and the context is created once per process on first use.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from great_expectations.core.batch_definition import BatchDefinition
    from great_expectations.expectations import Expectation

SOURCE_COLUMNS = ("source_file", "source_line")
"""Where each row came from; always shown with a failing row."""

MAX_EXAMPLES = 5
_POSITION = "courtside_position"
_NARROW_FROM_CELLS = 50_000
"""Frames with more cells than this are validated column group by column group."""
_GX_LOCK = threading.Lock()
"""One validation at a time through the shared context (GX does not claim thread safety)."""

_SCHEMA_TYPES = frozenset(
    {
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_column_count_to_equal",
        "expect_table_column_count_to_be_between",
        "expect_column_type_to_be",
        "expect_column_to_exist",
    }
)
"""Expectations on column names and dtypes only. Every other expectation sees only the columns it
reads: GX filters (copies) its whole batch frame for each metric, so narrow frames are faster."""


@dataclass(frozen=True)
class ExpectationOutcome:
    """How one named expectation fared on a frame."""

    name: str
    """Stable human name, e.g. ``winner_differs_from_loser``."""
    expectation_type: str
    columns: tuple[str, ...]
    success: bool
    unexpected_count: int | None = None
    """Rows that broke a row-level expectation (None for table-level expectations)."""
    unexpected_percent: float | None = None
    """Share of all validated rows that broke it, in percent."""
    observed_value: Any = None
    """GX's observed value for table-level expectations (for a failed column-set check, the
    ``missing``/``unexpected`` columns); the most common unexpected values (as ``(value, count)``
    pairs) for row-level ones."""
    examples: tuple[dict[str, Any], ...] = ()
    """Up to five failing rows: ``source_file``, ``source_line``, the row's key and the checked
    columns."""
    failing_rows: tuple[int, ...] = ()
    """Positions (0-based, in the validated frame) of failing rows: all of them when validated
    with ``all_failing_rows=True``, otherwise only those shown as examples."""
    error: str | None = None
    """Why GX could not evaluate the expectation (e.g. a missing column); it then fails."""
    reason: str | None = None
    """Template of a human reason for one failing row (``str.format`` over the row's values)."""


@dataclass(frozen=True)
class SuiteResult:
    """The outcome of one suite on one frame."""

    suite_name: str
    success: bool
    evaluated_rows: int
    expectations: tuple[ExpectationOutcome, ...]
    seconds: float = 0.0

    @property
    def failures(self) -> tuple[ExpectationOutcome, ...]:
        """The expectations that failed."""
        return tuple(e for e in self.expectations if not e.success)

    def outcome(self, name: str) -> ExpectationOutcome:
        """The outcome of the expectation called ``name``."""
        for e in self.expectations:
            if e.name == name:
                return e
        raise KeyError(f"{self.suite_name} has no expectation named {name!r}")

    def summary_markdown(self, max_examples: int = 3) -> str:
        """A short markdown report: a headline and a table of failed expectations with examples."""
        n = len(self.expectations)
        rows = f"{self.evaluated_rows:,} rows"
        if self.success:
            return f"**{self.suite_name}**: all {n} expectations passed on {rows}."
        lines = [
            f"**{self.suite_name}**: {len(self.failures)} of {n} expectations failed on {rows}.",
            "",
            "| expectation | columns | unexpected | examples |",
            "|---|---|---|---|",
        ]
        for f in self.failures:
            if f.error:
                unexpected = f"error: {f.error}"
            elif f.unexpected_count is not None:
                unexpected = f"{f.unexpected_count:,} ({f.unexpected_percent or 0:.3g}%)"
            else:
                unexpected = f"observed {f.observed_value}"
            examples = " <br> ".join(_example_text(x) for x in f.examples[:max_examples])
            cells = [f"`{f.name}`", ", ".join(f.columns), unexpected, examples]
            lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
        return "\n".join(lines)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _example_text(example: dict[str, Any]) -> str:
    where = f"{example.get('source_file')}:{example.get('source_line')}"
    rest = ", ".join(f"{k}={v}" for k, v in example.items() if k not in SOURCE_COLUMNS)
    return f"`{where}` {rest}"


@functools.lru_cache(maxsize=1)
def _batch_definition() -> BatchDefinition:
    """The whole-dataframe batch definition of the process's ephemeral context (made on first
    use)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(),
        analytics_enabled=False,  # no usage statistics sent from a data check
        progress_bars=ProgressBarsConfig(globally=False),  # tqdm bars would flood run logs
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    asset = context.data_sources.add_pandas("courtside").add_dataframe_asset("frame")
    return asset.add_batch_definition_whole_dataframe("whole_frame")


def expectation_name(expectation: Expectation) -> str:
    """The stable human name of an expectation (its ``meta['name']``, else its GX type)."""
    return str((expectation.meta or {}).get("name") or expectation.expectation_type)


def expectation_columns(expectation: Expectation) -> tuple[str, ...]:
    """The columns an expectation looks at (without those of its row condition)."""
    cols: list[str] = []
    for attr in ("column", "column_A", "column_B"):
        value = getattr(expectation, attr, None)
        if isinstance(value, str):
            cols.append(value)
    cols.extend(getattr(expectation, "column_list", None) or ())
    return tuple(dict.fromkeys(cols))


def _condition_columns(expectation: Expectation, frame_columns: Sequence[str]) -> list[str]:
    """The columns named by an expectation's row condition."""

    def walk(condition: Any) -> list[str]:
        if condition is None:
            return []
        if isinstance(condition, str) or hasattr(condition, "pass_through_filter"):
            text = getattr(condition, "pass_through_filter", condition)
            return [c for c in frame_columns if re.search(rf"\b{re.escape(c)}\b", text)]
        if hasattr(condition, "conditions"):
            return [c for sub in condition.conditions for c in walk(sub)]
        column = getattr(condition, "column", None)
        return [column.name] if column is not None else []

    return walk(getattr(expectation, "row_condition", None))


def validate(
    frame: pd.DataFrame,
    suite_name: str,
    expectations: Sequence[Expectation],
    *,
    context_columns: Sequence[str] = (),
    all_failing_rows: bool = False,
    max_examples: int = MAX_EXAMPLES,
) -> SuiteResult:
    """Validate ``frame`` against ``expectations``; failing rows are shown with ``context_columns``.

    ``all_failing_rows`` collects every failing row (slower on big failures); otherwise only the
    examples are collected.
    """
    start = time.perf_counter()
    frame = frame.reset_index(drop=True)  # failing rows are then positions
    columns = list(frame.columns)
    # Schema expectations look at dtypes and column names only: an empty frame with every column
    # and the original dtypes answers them.
    # Row expectations run on narrow frames (GX copies its frame for each metric), grouped by the
    # columns they read; a small frame is cheaper to copy than a GX validation is to start.
    narrow = frame.size > _NARROW_FROM_CELLS
    batches: dict[tuple[str, ...] | None, list[Expectation]] = {None: []}
    for e in expectations:
        if e.expectation_type in _SCHEMA_TYPES:
            batches[None].append(e)
        else:
            needed = _needed_columns(e, columns) if narrow else tuple(columns)
            batches.setdefault(needed, []).append(e)
    rows_frame = _comparable(frame)
    result_format: dict[str, Any] = (
        {"result_format": "COMPLETE"}
        if all_failing_rows
        else {"result_format": "SUMMARY", "partial_unexpected_count": max_examples}
    )
    results: dict[int, Any] = {}
    for batch_columns, group in batches.items():
        if group:
            data = frame.iloc[:0] if batch_columns is None else rows_frame[list(batch_columns)]
            results.update(_run(group, data, suite_name, result_format))
    outcomes = tuple(_outcome(e, results[id(e)], frame, context_columns, max_examples) for e in expectations)
    return SuiteResult(
        suite_name=suite_name,
        success=all(o.success for o in outcomes),
        evaluated_rows=len(frame),
        expectations=outcomes,
        seconds=time.perf_counter() - start,
    )


def _needed_columns(expectation: Expectation, columns: Sequence[str]) -> tuple[str, ...]:
    """The columns of the frame one expectation reads (at least one, so the frame has rows)."""
    wanted = {*expectation_columns(expectation), *_condition_columns(expectation, columns)}
    needed = tuple(c for c in columns if c in wanted)
    return needed or tuple(columns[-1:])


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with dtypes GX 1.x compares quickly and safely on pandas.

    GX compares values one by one in Python for nullable integers and for datetimes in a unit
    other than nanoseconds (minutes on 190k rows), and ``DataFrame.query`` row conditions fail on
    nullable integers with missing values. Nullable integers become floats (NaN for missing) and
    datetimes nanoseconds; the values are unchanged, and examples are read from the original frame.
    """
    out = {}
    for name, col in frame.items():
        dtype = col.dtype
        if pd.api.types.is_extension_array_dtype(dtype) and pd.api.types.is_numeric_dtype(dtype):
            out[name] = pd.Series(col.to_numpy(dtype="float64", na_value=np.nan), index=col.index)
        elif isinstance(dtype, np.dtype) and dtype.kind == "M" and dtype != np.dtype("M8[ns]"):
            out[name] = col.astype("datetime64[ns]")
    return frame.assign(**out) if out else frame


def _run(group: Sequence[Expectation], data: pd.DataFrame, suite_name: str, result_format: dict) -> dict[int, Any]:
    """GX results of ``group`` on ``data``, by ``id()`` of the expectation."""
    import great_expectations as gx

    # Copies, as a GX suite takes ownership of the expectations added to it; each is tagged with
    # its position because GX returns the results in an order of its own.
    copies = [e.copy(deep=True) for e in group]
    for position, copy in enumerate(copies):
        copy.meta = {**(copy.meta or {}), _POSITION: position}
    suite = gx.ExpectationSuite(name=suite_name, expectations=copies)
    with _GX_LOCK:
        batch = _batch_definition().get_batch(batch_parameters={"dataframe": data})
        validation = batch.validate(suite, result_format=result_format)
    out: dict[int, Any] = {}
    for r in validation.results:
        config = r.expectation_config
        assert config is not None  # GX sets it on every result of a suite's validation
        out[id(group[config.meta[_POSITION]])] = r
    return out


def _error_message(exception_info: Any) -> str | None:
    if not exception_info:
        return None
    infos = [exception_info] if "raised_exception" in exception_info else exception_info.values()
    for info in infos:
        if isinstance(info, dict) and info.get("raised_exception"):
            message = str(info.get("exception_message") or "GX raised an exception")
            return message.strip().splitlines()[-1][:300]
    return None


def _outcome(
    expectation: Expectation,
    res: Any,
    frame: pd.DataFrame,
    context_columns: Sequence[str],
    max_examples: int,
) -> ExpectationOutcome:
    result: dict[str, Any] = dict(res.result or {})
    error = _error_message(res.exception_info)
    columns = tuple(
        dict.fromkeys([*expectation_columns(expectation), *_condition_columns(expectation, list(frame.columns))])
    )
    index_list = result.get("unexpected_index_list")
    if index_list is None:
        index_list = result.get("partial_unexpected_index_list") or []
    positions = tuple(dict.fromkeys(int(i) for i in index_list))
    shown = [c for c in dict.fromkeys([*SOURCE_COLUMNS, *context_columns, *columns]) if c in frame.columns]
    examples = tuple({c: _plain(frame.at[p, c]) for c in shown} for p in positions[:max_examples])
    observed = result.get("observed_value")
    mismatched = (result.get("details") or {}).get("mismatched")
    if mismatched and not res.success:  # a failed column-set check: say what is missing/extra
        observed = mismatched
    elif observed is None and result.get("partial_unexpected_counts"):
        integral = (
            bool(columns) and columns[0] in frame.columns and pd.api.types.is_integer_dtype(frame[columns[0]].dtype)
        )
        observed = tuple(
            (_plain(_as_int(v["value"]) if integral else v["value"]), int(v["count"]))
            for v in result["partial_unexpected_counts"][:max_examples]
        )
    count = result.get("unexpected_count")
    return ExpectationOutcome(
        name=expectation_name(expectation),
        expectation_type=expectation.expectation_type,
        columns=columns,
        success=bool(res.success) and error is None,
        unexpected_count=None if count is None else int(count),
        unexpected_percent=None if count is None else 100.0 * count / max(len(frame), 1),
        observed_value=_plain(observed),
        examples=examples,
        failing_rows=positions,
        error=error,
        reason=(expectation.meta or {}).get("reason"),
    )


def _as_int(value: Any) -> Any:
    """Undo the float conversion of nullable integers for display."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _plain(value: Any) -> Any:
    """A value as plain Python (for metadata, JSON and markdown): NA -> None, numpy -> builtins."""
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or (not isinstance(value, str) and pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if isinstance(value, dt.datetime):  # pd.Timestamp included
        stamp = pd.Timestamp(value)
        return stamp.date().isoformat() if stamp == stamp.normalize() else stamp.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value
