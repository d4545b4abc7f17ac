"""Propose errata: every real row that fails its dataset's suite, as ``feeds/errata.csv`` rows.

Run ``uv run python -m expectations.propose_errata [--data DIR] [dataset ...]``. It ingests each
dataset without the current errata, runs its suite, and prints ``dataset,key,reason`` CSV rows on
stdout (a person reviews them and commits them as ``feeds/errata.csv``; the ingest then sets those
rows aside). The key is the row's key columns as written in the source file, joined by ``|``
(``feeds.historical.row_keys``). Of a duplicate only the second and later copies are listed.

Failures that setting rows aside cannot fix (missing columns, wrong dtypes, a row count out of
bounds) and keys that also name rows that pass are reported on stderr.
"""

from __future__ import annotations

import argparse
import csv
import string
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from expectations.runner import SuiteResult, expectation_columns, expectation_name
from expectations.suites import SUITES, RowBounds, validate_dataset
from feeds.historical import ERRATA_FILE, SPECS, TableSpec, ingest, read_text_frame, row_keys
from feeds.sources import DataSource, LocalDataSource, UpstreamDataSource

_DUPLICATE_TYPES = frozenset({"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"})
_VALUE_TYPES = frozenset({"expect_column_values_to_be_between"})
"""Expectations on one value: when its column is optional, removing the value fixes the row."""


@dataclass(frozen=True)
class ProposedErratum:
    """One proposed ``feeds/errata.csv`` row, with the source row it names."""

    dataset: str
    key: str
    reason: str
    source_file: str
    source_line: int
    column: str | None = None
    """Set when only this value is wrong (an optional column out of range): the value is removed
    and the rest of the row kept. None: the whole row is set aside."""


@dataclass(frozen=True)
class Proposal:
    """The errata proposed for one dataset and what they would do."""

    dataset: str
    result: SuiteResult
    errata: tuple[ProposedErratum, ...]
    failing_rows: tuple[int, ...]
    """Positions (in the validated frame) of the rows the errata list."""
    set_aside: tuple[int, ...]
    """Positions (in the validated frame) of every row the ingest would set aside with these
    errata: the failing rows and any other row with the same key (e.g. a duplicate's first copy)."""
    unfixable: tuple[str, ...]
    """Failed expectations that are not about rows (schema, types, row count)."""
    row_reasons: dict[int, list[tuple[str | None, str]]] = field(default_factory=dict)
    """Position of each failing row -> what is wrong with it: (the column whose value alone is wrong, or None for
    the whole row; the reason in words)."""


def propose(dataset: str, frame: pd.DataFrame, source: DataSource, *, row_bounds: RowBounds | None = None) -> Proposal:
    """Errata for every row of ``frame`` (ingested from ``source`` without errata) that fails."""
    spec = SPECS[dataset]
    frame = frame.reset_index(drop=True)
    result = validate_dataset(dataset, frame, row_bounds=row_bounds, all_failing_rows=True)
    columns_of = {expectation_name(e): expectation_columns(e) for e in SUITES[dataset]()}
    reasons: dict[int, list[tuple[str | None, str]]] = {}
    unfixable: list[str] = []
    optional = {c.name for c in spec.columns if not c.required} - set(spec.key)
    for outcome in result.failures:
        if outcome.error or outcome.unexpected_count is None:
            unfixable.append(f"{outcome.name}: {outcome.error or outcome.observed_value}")
            continue
        rows = frame.iloc[list(outcome.failing_rows)]
        template = outcome.reason or f"fails {outcome.name}"
        if outcome.expectation_type in _DUPLICATE_TYPES:
            ordered = rows.sort_values(["source_file", "source_line"], kind="stable")
            key_cols = list(columns_of[outcome.name])
            for _, copies in ordered.groupby(key_cols, sort=False, dropna=False, observed=True):
                first = _display(copies.iloc[0])
                for position, row in copies.iloc[1:].iterrows():
                    reasons.setdefault(int(position), []).append((None, _fill(template, _display(row), first=first)))
        else:
            cols = columns_of[outcome.name]
            column = (
                cols[0]
                if (outcome.expectation_type in _VALUE_TYPES and len(cols) == 1 and cols[0] in optional)
                else None
            )
            for position, row in rows.iterrows():
                reasons.setdefault(int(position), []).append((column, _fill(template, _display(row))))

    listed = sorted(reasons, key=lambda p: (str(frame.at[p, "source_file"]), int(frame.at[p, "source_line"])))
    text_keys = _source_keys(frame.iloc[listed], spec, source) if listed else {}
    errata: dict[tuple[str, str | None], ProposedErratum] = {}
    for p in listed:
        where = (str(frame.at[p, "source_file"]), int(frame.at[p, "source_line"]))
        key = text_keys[where]
        found = reasons[p]
        if any(col is None for col, _ in found) or (key, None) in errata:
            found = [(None, "; ".join(dict.fromkeys(r for _, r in found)))]
        for column, reason in found:
            if (key, column) in errata:  # failing rows that share a key: one erratum names them all
                earlier = errata[(key, column)]
                reason = "; ".join(dict.fromkeys([earlier.reason, reason]))
                where = (earlier.source_file, earlier.source_line)
            errata[(key, column)] = ProposedErratum(dataset, key, reason, *where, column=column)
        if (key, None) in errata:  # a row set aside needs no value removed
            for k in [k for k in errata if k[0] == key and k[1] is not None]:
                del errata[k]
    typed = typed_keys(frame, spec)
    row_level = {e.key for e in errata.values() if e.column is None}
    aside = [
        p for p in listed if text_keys[(str(frame.at[p, "source_file"]), int(frame.at[p, "source_line"]))] in row_level
    ]
    proposed = set(typed.iloc[aside])
    set_aside = tuple(int(p) for p in frame.index[typed.isin(proposed)])
    return Proposal(dataset, result, tuple(errata.values()), tuple(listed), set_aside, tuple(unfixable), reasons)


def typed_keys(frame: pd.DataFrame, spec: TableSpec) -> pd.Series:
    """The key of each row of a typed frame, written like the source (dates in source format)."""
    kinds = {c.name: c for c in spec.columns}
    parts = []
    for name in spec.key:
        col, values = kinds[name], frame[name]
        if col.kind == "date":
            parts.append(values.dt.strftime(col.date_format or "%Y-%m-%d").fillna(""))
        elif col.kind == "int":
            parts.append(values.astype("Int64").astype("string").fillna("").astype(str))
        else:
            parts.append(values.astype("string").fillna("").astype(str))
    return row_keys(pd.DataFrame(dict(zip(spec.key, parts, strict=True))), spec.key)


def _source_keys(rows: pd.DataFrame, spec: TableSpec, source: DataSource) -> dict[tuple[str, int], str]:
    """The errata key of each row, read from the source text as the ingest reads it (names keep
    their stray spaces there, e.g. ``Berrettini M. ``)."""
    files = {f.name: f for f in source.files(spec.dataset)}
    typed = typed_keys(rows, spec)
    out: dict[tuple[str, int], str] = {}
    for name, group in rows.groupby(rows["source_file"].astype(str), sort=False):
        f = files.get(name)
        if f is None or f.layout != "csv":  # upstream workbooks: the typed key is the best we have
            for i, line in zip(group.index, group["source_line"], strict=True):
                out[(name, int(line))] = typed[i]
            continue
        text, lines, _ = read_text_frame(source.read(f), f.location)
        text = text.reset_index(drop=True).fillna("")
        for value in spec.na_values:
            text = text.replace(value, "")
        keys = dict(zip(lines.tolist(), row_keys(text, spec.key), strict=True))
        for line in group["source_line"]:
            out[(name, int(line))] = keys[int(line)]
    return out


class _Row(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _display(row: pd.Series) -> _Row:
    """A row's values as short text for a reason (3.0 -> 3, missing -> 'missing')."""
    out = _Row()
    for name, value in row.items():
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            out[str(name)] = "missing"
        elif isinstance(value, pd.Timestamp):
            out[str(name)] = value.strftime("%Y-%m-%d")
        elif isinstance(value, float):
            out[str(name)] = f"{value:g}"
        else:
            out[str(name)] = str(value)
    return out


def _fill(template: str, row: Mapping[str, Any], first: Mapping[str, Any] | None = None) -> str:
    values = _Row(row)
    values["first"] = first if first is not None else _Row()
    return string.Formatter().vformat(template, (), values)


def _source(data_dir: str) -> DataSource:
    return UpstreamDataSource() if data_dir == "upstream" else LocalDataSource(Path(data_dir))


def write_errata(errata: Iterable[ProposedErratum], out: TextIO | None = None) -> None:
    """Write errata as ``feeds/errata.csv`` rows, with the header (to stdout by default)."""
    writer = csv.writer(out or sys.stdout, lineterminator="\n")
    writer.writerow(["dataset", "key", "column", "reason"])
    for e in errata:
        writer.writerow([e.dataset, e.key, e.column or "", e.reason])


def read_proposals(folder: Path, datasets: Sequence[str] = ()) -> dict[str, list[dict[str, str]]]:
    """The errata the pipeline proposed (``<home>/errata/proposed/<dataset>.csv``), by dataset."""
    out: dict[str, list[dict[str, str]]] = {}
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        if datasets and path.stem not in datasets:
            continue
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
        if rows:
            out[path.stem] = rows
    return out


def accept_proposals(folder: Path, current: Path, target: Path, datasets: Sequence[str] = ()) -> list[dict[str, str]]:
    """Add the proposed errata (of ``datasets``, or all) to the reviewed errata: ``current`` (the file in force) is
    copied to ``target`` first when they differ (the packaged default is never edited), rows already there are not
    added twice, and the accepted proposal files go. Returns the rows added."""
    proposals = read_proposals(folder, datasets)
    if not target.exists():  # a new reviewed file starts from the errata in force (else the packaged ones)
        seed = current if current.exists() and current != target else ERRATA_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(seed.read_text(encoding="utf-8"))
    have: set[tuple[str, str, str]] = set()
    if target.exists():
        with target.open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(line for line in fh if not line.startswith("#")):
                have.add((row["dataset"], row["key"], row.get("column") or ""))
    added = []
    for rows in proposals.values():
        for row in rows:
            key = (row["dataset"], row["key"], row.get("column") or "")
            if key not in have:
                have.add(key)
                added.append(row)
    text = target.read_text(encoding="utf-8")
    with target.open("a", newline="", encoding="utf-8") as fh:
        if text and not text.endswith("\n"):
            fh.write("\n")
        writer = csv.writer(fh, lineterminator="\n")
        for row in added:
            writer.writerow([row["dataset"], row["key"], row.get("column") or "", row["reason"]])
    for dataset in proposals:
        (folder / f"{dataset}.csv").unlink(missing_ok=True)
    return added


def main(argv: Sequence[str] | None = None) -> int:
    """Print the proposed errata of the given datasets (all by default); 1 if some failures
    cannot be fixed by errata."""
    from courtside.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m expectations.propose_errata", description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", metavar="dataset", help=f"any of: {', '.join(SUITES)} (default: all)")
    parser.add_argument("--data", default=None, help="data folder (default: COURTSIDE_DATA_DIR)")
    args = parser.parse_args(argv)
    unknown = [d for d in args.datasets if d not in SUITES]
    if unknown:
        parser.error(f"unknown datasets {unknown}; known: {', '.join(SUITES)}")
    source = _source(args.data or Settings.from_env().data_dir)
    status = 0
    everything: list[ProposedErratum] = []
    for dataset in args.datasets or list(SUITES):
        frame = ingest(source, dataset, errata={}).frame
        proposal = propose(dataset, frame, source)
        everything.extend(proposal.errata)
        r = proposal.result
        print(
            f"{dataset}: {r.evaluated_rows:,} rows, {len(r.expectations)} expectations "
            f"({r.seconds:.1f} s), {len(r.failures)} failed; {len(proposal.errata)} errata "
            f"setting aside {len(proposal.set_aside)} rows",
            file=sys.stderr,
        )
        extra = len(set(proposal.set_aside) - set(proposal.failing_rows))
        if extra:
            print(
                f"  note: {extra} rows not listed (e.g. the first copy of a duplicate) share a "
                "key with a listed row: the ingest sets them aside too, as errata name rows by "
                "key",
                file=sys.stderr,
            )
        for problem in proposal.unfixable:
            status = 1
            print(f"  NOT FIXABLE BY ERRATA: {problem}", file=sys.stderr)
    write_errata(everything)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
