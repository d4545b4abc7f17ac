"""Ingest of the historical datasets: parse each file against its column spec, keep every good row,
reject every row that cannot be parsed with a reason, and never stop on one bad row or one bad file.

Parsing is the only judgement made here: a row whose ``winner_id`` is not an integer is rejected;
a row with a negative rank parses fine and is left for the Great Expectations suites to judge.
Known upstream defects that were reviewed by a person are listed in ``feeds/errata.csv`` and are
set aside with their reason, so a new defect of the same kind still fails its data check.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from feeds.sources import DataSource, SourceFile, sha256_hex

ERRATA_FILE = Path(__file__).with_name("errata.csv")


@dataclass(frozen=True)
class Col:
    """One expected column: its type (str, int, float or date) and whether a value is required."""

    name: str
    kind: str = "str"
    required: bool = False
    date_format: str | None = None


@dataclass(frozen=True)
class TableSpec:
    """What a dataset's files must look like."""

    dataset: str
    columns: tuple[Col, ...]
    key: tuple[str, ...] = ()
    """Columns that identify a row (errata refer to rows by these)."""
    na_values: tuple[str, ...] = ()
    """Source spellings of 'no value' besides the empty field (tennis-data writes N/A, NR)."""

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


@dataclass(frozen=True)
class Rejection:
    """A row (or whole file) that could not be ingested, and why."""

    location: str
    line: int | None
    record: str
    reason: str


@dataclass(frozen=True)
class FileReport:
    """What happened to one file."""

    name: str
    rows: int
    rejected: int
    sha256: str | None
    missing: bool = False


@dataclass
class IngestResult:
    """The good rows of a dataset, the rejected ones with reasons, and per-file counts."""

    dataset: str
    frame: pd.DataFrame
    rejections: list[Rejection] = field(default_factory=list)
    files: list[FileReport] = field(default_factory=list)
    data_version: str = ""
    corrections: list[Rejection] = field(default_factory=list)
    """Values removed by a reviewed erratum (the rest of each row was kept)."""

    @property
    def rejected_by_reason(self) -> dict[str, int]:
        """Counts of rejections by the kind of reason (the text before the first colon)."""
        counts: dict[str, int] = {}
        for r in self.rejections:
            kind = r.reason.split(":", 1)[0]
            counts[kind] = counts.get(kind, 0) + 1
        return counts


def _ints(*names: str, required: bool = False) -> list[Col]:
    return [Col(n, "int", required) for n in names]


def _floats(*names: str) -> list[Col]:
    return [Col(n, "float") for n in names]


_STATS = [
    f"{side}_{s}"
    for side in "wl"
    for s in ("ace", "df", "svpt", "1stIn", "1stWon", "2ndWon", "SvGms", "bpSaved", "bpFaced")
]


_SACKMANN_PLAYERS = (
    Col("player_id", "int", True),
    Col("name_first"),
    Col("name_last"),
    Col("hand"),
    Col("dob"),  # YYYYMMDD, or YYYY0000 when only the year is known: parsed by features
    Col("ioc"),
    Col("height", "float"),
    Col("wikidata_id"),
)
"""Sackmann's player registers (ATP and WTA: the same columns)."""


def _slam_odds(dataset: str, tour: str, level: str, sets: int, points: list[Col]) -> TableSpec:
    """tennis-data.co.uk's Grand Slam layout (Winner/Loser), for a tour: its number column, its level column
    (``Series`` / ``Tier``), the sets a match can have."""
    return TableSpec(
        dataset,
        (
            Col(tour),
            Col("Location"),
            Col("Tournament", required=True),
            Col("Date", "date", True, "%Y-%m-%d"),
            Col(level),
            Col("Court"),
            Col("Surface"),
            Col("Round", required=True),
            Col("Best of", "int", True),
            Col("Winner", required=True),
            Col("Loser", required=True),
            *_ints("WRank", "LRank"),
            *points,
            *_floats(*[f"{s}{i}" for i in range(1, sets + 1) for s in "WL"], "Wsets", "Lsets"),
            Col("Comment"),
            *_floats("B365W", "B365L", "PSW", "PSL", "MaxW", "MaxL", "AvgW", "AvgL"),
        ),
        ("Date", "Winner", "Loser"),
        ("N/A", "NR"),
    )


_SACKMANN_MATCHES = (
    Col("tourney_id", required=True),
    Col("tourney_name", required=True),
    Col("surface"),
    Col("draw_size"),
    Col("tourney_level", required=True),
    Col("tourney_date", "date", True, "%Y%m%d"),
    *_ints("match_num", "winner_id", required=True),
    Col("winner_seed"),
    Col("winner_entry"),
    Col("winner_name"),
    Col("winner_hand"),
    *_floats("winner_ht"),
    Col("winner_ioc"),
    *_floats("winner_age"),
    *_ints("loser_id", required=True),
    Col("loser_seed"),
    Col("loser_entry"),
    Col("loser_name"),
    Col("loser_hand"),
    *_floats("loser_ht"),
    Col("loser_ioc"),
    *_floats("loser_age"),
    Col("score"),
    *_ints("best_of", required=True),
    Col("round", required=True),
    *_floats("minutes", *_STATS),
    *_ints("winner_rank", "winner_rank_points", "loser_rank", "loser_rank_points"),
)


def _reference_mapping(dataset: str) -> TableSpec:
    """The Grand Slam odds rows' Sackmann ids as published beside the data (ATP and WTA: the same columns); a
    measuring stick for the name matching, never its input."""
    return TableSpec(
        dataset,
        (
            Col("Date", "date", True, "%Y-%m-%d"),
            Col("Winner", required=True),
            Col("Loser", required=True),
            *_ints("winner_id", "loser_id", required=True),
            Col("tourney_id"),
            Col("match_id"),
        ),
        ("Date", "Winner", "Loser"),
    )


SPECS: dict[str, TableSpec] = {
    "atp_matches": TableSpec("atp_matches", _SACKMANN_MATCHES, ("tourney_id", "match_num")),
    "atp_matches_qual_chall": TableSpec("atp_matches_qual_chall", _SACKMANN_MATCHES, ("tourney_id", "match_num")),
    "atp_players": TableSpec("atp_players", _SACKMANN_PLAYERS, ("player_id",)),
    "wta_players": TableSpec("wta_players", _SACKMANN_PLAYERS, ("player_id",)),
    "wta_matches": TableSpec("wta_matches", _SACKMANN_MATCHES, ("tourney_id", "match_num")),
    "odds_tour": TableSpec(
        "odds_tour",
        (
            Col("Tournament", required=True),
            Col("Date", "date", True, "%Y-%m-%d"),
            Col("Series"),
            Col("Court"),
            Col("Surface"),
            Col("Round", required=True),
            Col("Best of", "int", True),
            Col("Player_1", required=True),
            Col("Player_2", required=True),
            Col("Winner", required=True),
            *_ints("Rank_1", "Rank_2", "Pts_1", "Pts_2"),
            Col("Odd_1", "float", True),
            Col("Odd_2", "float", True),
            Col("score"),
        ),
        ("Date", "Player_1", "Player_2"),
        ("N/A", "NR"),
    ),
    "odds_slams": _slam_odds("odds_slams", "ATP", "Series", sets=5, points=_ints("WPts", "LPts")),
    # WTA ranking points had quarters (847.75) in the 2000s
    "wta_odds_slams": _slam_odds("wta_odds_slams", "WTA", "Tier", sets=3, points=_floats("WPts", "LPts")),
    "reference_name_mapping": _reference_mapping("reference_name_mapping"),
    "wta_reference_name_mapping": _reference_mapping("wta_reference_name_mapping"),
    "pbp_matches": TableSpec(
        "pbp_matches",
        (
            Col("pbp_id", "int", True),
            Col("date", "date", True, "%d %b %y"),
            Col("tny_name", required=True),
            Col("tour"),
            Col("draw"),
            Col("server1", required=True),
            Col("server2", required=True),
            Col("winner", "int", True),
            Col("pbp", required=True),
            Col("score"),
            Col("adf_flag", "int"),
            Col("wh_minutes", "float"),
        ),
        ("pbp_id",),
    ),
    "slam_matches": TableSpec(
        "slam_matches",
        (
            Col("match_id", required=True),
            Col("year", "int", True),
            Col("slam", required=True),
            Col("match_num", "int"),
            Col("player1", required=True),
            Col("player2", required=True),
            Col("status"),
            Col("winner", "int"),
            Col("event_name"),
            Col("round"),
            Col("court_name"),
            Col("court_id"),
            Col("player1id"),
            Col("player2id"),
            Col("nation1"),
            Col("nation2"),
        ),
        ("match_id",),
    ),
    "slam_points": TableSpec(
        "slam_points",
        (
            Col("match_id", required=True),
            Col("ElapsedTime"),
            *_ints(
                "SetNo",
                "P1GamesWon",
                "P2GamesWon",
                "SetWinner",
                "GameNo",
                "GameWinner",
                "PointNumber",
                "PointWinner",
                "PointServer",
            ),
            Col("P1Score"),
            Col("P2Score"),
            *_floats("Speed_KMH", "Rally"),
            *_ints("P1Ace", "P2Ace", "P1DoubleFault", "P2DoubleFault", "ServeIndicator"),
        ),
        ("match_id", "PointNumber"),
    ),
}
"""Column specs of every dataset. Columns a file has beyond its spec are kept as text."""


@dataclass(frozen=True)
class Erratum:
    """A reviewed defect of one source row: set the whole row aside, or remove one value."""

    key: str
    column: str | None
    reason: str


def errata_path(configured: str = "", home: Path | None = None) -> Path:
    """The errata file in force: the configured one (``COURTSIDE_ERRATA``), else ``<home>/errata.csv`` when a person
    made one (``courtside errata accept`` does), else the packaged default (``feeds/errata.csv``)."""
    if configured:
        return Path(configured)
    if home is not None and (home / "errata.csv").exists():
        return home / "errata.csv"
    return ERRATA_FILE


def load_errata(path: Path = ERRATA_FILE) -> dict[str, list[Erratum]]:
    """Reviewed upstream defects by dataset (see the header of ``feeds/errata.csv``)."""
    errata: dict[str, list[Erratum]] = {}
    if not path.exists():
        return errata
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(line for line in fh if not line.startswith("#")):
            errata.setdefault(row["dataset"], []).append(Erratum(row["key"], row.get("column") or None, row["reason"]))
    return errata


def row_keys(frame: pd.DataFrame, key: tuple[str, ...]) -> pd.Series:
    """The text key of each row, as used in ``errata.csv``."""
    out = frame[key[0]].astype(str)
    for col in key[1:]:
        out = out + "|" + frame[col].astype(str)
    return out


def read_text_frame(raw: bytes, location: str) -> tuple[pd.DataFrame, np.ndarray, list[Rejection]]:
    """Parse CSV bytes into a frame of strings and the file line of each row; lines with the wrong
    number of fields are rejected (the fast C parser first, the csv module when a line is bad)."""
    text = raw.decode("utf-8", errors="replace")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, on_bad_lines="error")
        return frame, np.arange(len(frame), dtype="int64") + 2, []  # the header is line 1
    except pd.errors.ParserError:
        pass
    reader = csv.reader(io.StringIO(text))
    header = next(reader)
    good, lines, bad = [], [], []
    for row in reader:
        if len(row) == len(header):
            good.append(row)
            lines.append(reader.line_num)
        elif any(row):
            bad.append(
                Rejection(
                    location,
                    reader.line_num,
                    ",".join(row),
                    f"field count: expected {len(header)} fields, found {len(row)}",
                )
            )
    return pd.DataFrame(good, columns=header, dtype=str), np.asarray(lines, dtype="int64"), bad


def _kind_name(kind: str) -> str:
    return {"int": "an integer", "float": "a number", "date": "a date"}.get(kind, kind)


def coerce(frame: pd.DataFrame, spec: TableSpec) -> tuple[pd.DataFrame, pd.Series]:
    """Type the columns of a string frame; returns the typed frame and a reason per row ('' = good)."""
    reason = pd.Series("", index=frame.index, dtype=object)
    typed: dict[str, pd.Series] = {}
    for col in spec.columns:
        s = frame[col.name].astype(str).str.strip()
        empty = s.eq("")
        if col.kind == "str":
            typed[col.name] = s.where(~empty, None)
            failed = pd.Series(False, index=frame.index)
        elif col.kind in ("int", "float"):
            num = pd.to_numeric(s.where(~empty, None), errors="coerce")
            failed = ~empty & num.isna()
            if col.kind == "int":
                failed |= num.notna() & (num % 1 != 0)
                typed[col.name] = num.where(~failed).astype("Int64")
            else:
                typed[col.name] = num.where(~failed).astype("float64")
        else:
            parsed = pd.to_datetime(s.where(~empty, None), format=col.date_format, errors="coerce")
            failed = ~empty & parsed.isna()
            typed[col.name] = parsed
        if col.required:
            missing = empty & reason.eq("")
            reason = reason.mask(missing, f"missing value: {col.name} is required")
        msg = col.name + ": {!r} is not " + _kind_name(col.kind)
        hit = failed & reason.eq("")
        if hit.any():
            reason = reason.mask(hit, s[hit].map(lambda v, m=msg: f"type: {m.format(v)}"))
    extra = [c for c in frame.columns if c not in typed]
    out = pd.DataFrame(typed, index=frame.index)
    for c in extra:
        out[c] = frame[c].where(frame[c].ne(""), None)
    return out, reason


def _row_text(frame: pd.DataFrame) -> list[str]:
    buf = io.StringIO()
    frame.to_csv(buf, header=False, index=False, lineterminator="\n")
    return buf.getvalue().splitlines()


Adapter = Callable[[bytes, SourceFile], pd.DataFrame]


def ingest(
    source: DataSource,
    dataset: str,
    progress: Callable[[int, int], None] | None = None,
    errata: dict[str, list[Erratum]] | None = None,
) -> IngestResult:
    """Read every file of ``dataset`` from ``source``: good rows typed, bad rows rejected with reasons."""
    spec = SPECS[dataset]
    errata = load_errata() if errata is None else errata
    known_rows = {e.key: e.reason for e in errata.get(dataset, []) if e.column is None}
    known_values = [e for e in errata.get(dataset, []) if e.column is not None]
    files = source.files(dataset)
    texts: list[pd.DataFrame] = []
    rejections: list[Rejection] = []
    reports: dict[str, FileReport] = {}
    hashes: list[bytes] = []
    for i, f in enumerate(files):
        if progress:
            progress(i, len(files))
        try:
            raw = source.read(f)
        except FileNotFoundError:
            reports[f.name] = FileReport(f.name, 0, 0, None, missing=True)
            continue
        hashes.append(raw)
        sha = sha256_hex([raw])
        bad: list[Rejection]
        try:
            if f.layout != "csv":
                text_frame, bad = _ADAPTERS[(f.layout, dataset)](raw, f), []
                lines = np.arange(len(text_frame), dtype="int64") + 2
            else:
                text_frame, lines, bad = read_text_frame(raw, f.location)
        except Exception as exc:  # a file that is not a table at all: reject it whole, keep going
            rejections.append(
                Rejection(f.location, None, raw[:500].decode("utf-8", "replace"), f"unreadable file: {exc}")
            )
            reports[f.name] = FileReport(f.name, 0, 1, sha)
            continue
        missing_cols = [c for c in spec.names if c not in text_frame.columns]
        if missing_cols:
            rejections.append(
                Rejection(
                    f.location, 1, ",".join(map(str, text_frame.columns)), f"schema: missing columns {missing_cols}"
                )
            )
            reports[f.name] = FileReport(f.name, 0, len(text_frame) + 1, sha)
            continue
        rejections.extend(bad)
        text_frame = text_frame.reset_index(drop=True)
        text_frame["source_file"] = f.name
        text_frame["source_line"] = lines
        texts.append(text_frame)
        reports[f.name] = FileReport(f.name, len(text_frame), len(bad), sha)
    if progress:
        progress(len(files), len(files))
    if not texts:
        empty = pd.DataFrame(columns=[*spec.names, "source_file", "source_line"])
        return IngestResult(dataset, empty, rejections, list(reports.values()), sha256_hex(hashes))

    text = pd.concat(texts, ignore_index=True).fillna("")
    for value in spec.na_values:
        text = text.replace(value, "")
    typed, reason = coerce(text.drop(columns=["source_file", "source_line"]), spec)
    corrections: list[Rejection] = []
    if (known_rows or known_values) and spec.key:
        keys = row_keys(text, spec.key)
        hit = keys.isin(known_rows.keys()) & reason.eq("")
        if hit.any():
            reason = reason.mask(hit, keys[hit].map(lambda k: f"erratum: {known_rows[k]}"))
        named = keys[keys.isin({e.key for e in known_values})]
        rows_of = {k: list(idx) for k, idx in named.groupby(named).groups.items()}
        for e in known_values:
            for pos in rows_of.get(e.key, []):
                if e.column in typed.columns and pd.notna(typed.at[pos, e.column]):
                    corrections.append(
                        Rejection(
                            text.at[pos, "source_file"],
                            int(text.at[pos, "source_line"]),
                            f"{e.column}={text.at[pos, e.column]}",
                            f"erratum (value removed): {e.reason}",
                        )
                    )
                    typed.at[pos, e.column] = None
    is_bad = reason.ne("")
    if is_bad.any():
        bad_text = text.loc[is_bad]
        records = _row_text(bad_text.drop(columns=["source_file", "source_line"]))
        locations = {f.name: f.location for f in files}
        for (name, line, why), rec in zip(
            bad_text[["source_file", "source_line"]].assign(why=reason[is_bad]).itertuples(index=False),
            records,
            strict=True,
        ):
            rejections.append(Rejection(locations[name], int(line), rec, why))
        for name, n in bad_text["source_file"].value_counts().items():
            r = reports[name]
            reports[name] = FileReport(r.name, r.rows - int(n), r.rejected + int(n), r.sha256)
    good = typed.loc[~is_bad].copy()
    good["source_file"] = text.loc[~is_bad, "source_file"].astype("category")
    good["source_line"] = text.loc[~is_bad, "source_line"].astype("int64")
    return IngestResult(
        dataset, good.reset_index(drop=True), rejections, list(reports.values()), sha256_hex(hashes), corrections
    )


# --- upstream adapters: tennis-data.co.uk yearly workbooks -> the local odds layouts -------------


def _tennis_data_frame(raw: bytes) -> pd.DataFrame:
    frame = pd.read_excel(io.BytesIO(raw), dtype=str).fillna("")
    frame.columns = [str(c).strip() for c in frame.columns]
    frame["Date"] = frame["Date"].astype(str).str.slice(0, 10)
    return frame


def _tennis_data_slams(dataset: str, level: str) -> Adapter:
    """A tennis-data.co.uk workbook's Grand Slam rows in ``dataset``'s layout (``level``: its ``Series``/``Tier``)."""

    def read(raw: bytes, _file: SourceFile) -> pd.DataFrame:
        frame = _tennis_data_frame(raw)
        frame = frame[frame[level].eq("Grand Slam")]
        for col in SPECS[dataset].names:
            if col not in frame.columns:
                frame[col] = ""
        return frame

    return read


def _set_scores(frame: pd.DataFrame) -> pd.Series:
    parts = []
    for i in range(1, 6):
        won, lost = frame.get(f"W{i}", ""), frame.get(f"L{i}", "")
        parts.append(np.where((won != "") & (lost != ""), won.astype(str) + "-" + lost.astype(str), ""))
    joined = pd.Series([" ".join(p for p in row if p) for row in zip(*parts, strict=True)], index=frame.index)
    return joined.map(lambda s: re.sub(r"\.0\b", "", s))


def _tennis_data_tour(raw: bytes, _file: SourceFile) -> pd.DataFrame:
    frame = _tennis_data_frame(raw)
    frame = frame[(frame.get("B365W", "") != "") & (frame.get("B365L", "") != "")]
    return pd.DataFrame(
        {
            "Tournament": frame["Tournament"],
            "Date": frame["Date"],
            "Series": frame["Series"],
            "Court": frame["Court"],
            "Surface": frame["Surface"],
            "Round": frame["Round"],
            "Best of": frame["Best of"],
            "Player_1": frame["Winner"],
            "Player_2": frame["Loser"],
            "Winner": frame["Winner"],
            "Rank_1": frame["WRank"],
            "Rank_2": frame["LRank"],
            "Pts_1": frame["WPts"],
            "Pts_2": frame["LPts"],
            "Odd_1": frame["B365W"],
            "Odd_2": frame["B365L"],
            "score": _set_scores(frame),
        }
    ).replace({"N/A": "", "NR": ""})


_ADAPTERS: dict[tuple[str, str], Adapter] = {
    ("tennis-data", "odds_slams"): _tennis_data_slams("odds_slams", "Series"),
    ("tennis-data", "wta_odds_slams"): _tennis_data_slams("wta_odds_slams", "Tier"),
    ("tennis-data", "odds_tour"): _tennis_data_tour,
}
"""Readers for files whose layout differs from the local folder's, by (layout, dataset)."""
