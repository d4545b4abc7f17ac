"""Where historical files come from: a local folder laid out like ``../shared/data``, or upstream URLs.

Both sources answer the same two questions -- which files make up a dataset, and what bytes does
one file hold -- so the ingest code above them is identical for a developer's folder and for a user
with internet access reading Jeff Sackmann's GitHub repositories and tennis-data.co.uk.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import random
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

SACKMANN_ATP = "https://raw.githubusercontent.com/JeffSackmann/tennis_atp/master"
SACKMANN_WTA = "https://raw.githubusercontent.com/JeffSackmann/tennis_wta/master"
SACKMANN_PBP = "https://raw.githubusercontent.com/JeffSackmann/tennis_pointbypoint/master"
SACKMANN_SLAM_PBP = "https://raw.githubusercontent.com/JeffSackmann/tennis_slam_pointbypoint/master"
TENNIS_DATA = "http://www.tennis-data.co.uk"

SLAMS = ("ausopen", "frenchopen", "wimbledon", "usopen")


@dataclass(frozen=True)
class SourceFile:
    """One file of a dataset: a stable name (for reports) and where to read it."""

    name: str
    location: str
    year: int | None = None
    layout: str = "csv"
    """``csv`` (the local folder's layout) or ``tennis-data`` (a tennis-data.co.uk yearly workbook)."""


class DataSource(Protocol):
    """A place historical files are read from."""

    def files(self, dataset: str) -> list[SourceFile]:
        """The files that make up ``dataset`` (empty when the source has none)."""
        ...

    def read(self, file: SourceFile) -> bytes:
        """The uncompressed bytes of one file."""
        ...

    def fingerprint(self) -> dict[str, str]:
        """A cheap per-file token that changes when a file changes (for the file sensor)."""
        ...


def _local_patterns(dataset: str) -> list[str]:
    """The default file globs of each dataset in a local folder (``COURTSIDE_SOURCES`` can replace any)."""
    return {
        "atp_matches": ["atp/atp_matches_[0-9][0-9][0-9][0-9].csv*"],
        "atp_matches_qual_chall": ["atp/atp_matches_qual_chall_[0-9][0-9][0-9][0-9].csv*"],
        "atp_players": ["atp/atp_players.csv*"],
        "wta_matches": ["wta/wta_matches_[0-9][0-9][0-9][0-9].csv*"],
        "wta_players": ["wta/wta_players.csv*"],
        "wta_odds_slams": ["odds/wta_grand_slam_odds_tennis_data.csv*"],
        "odds_tour": ["odds/atp_tour_odds_2013_onward.csv*"],
        "odds_slams": ["odds/grand_slam_odds_tennis_data.csv*"],
        "reference_name_mapping": ["odds/reference_name_mapping.csv*"],
        "wta_reference_name_mapping": ["odds/wta_reference_name_mapping.csv*"],
        # the archive (2011-2016) and, when present, the current files Sackmann's repository adds
        "pbp_matches": [
            "pbp/pbp_matches_atp_main_archive.csv*",
            "pbp/pbp_matches_atp_qual_archive.csv*",
            "pbp/pbp_matches_atp_main_current.csv*",
            "pbp/pbp_matches_atp_qual_current.csv*",
        ],
        "slam_matches": ["slam_pbp/[0-9][0-9][0-9][0-9]-*-matches.csv*"],
        "slam_points": ["slam_pbp/[0-9][0-9][0-9][0-9]-*-points.csv*"],
    }[dataset]


def _year_of(name: str) -> int | None:
    for part in Path(name).name.replace("-", "_").replace(".", "_").split("_"):
        if len(part) == 4 and part.isascii() and part.isdigit():
            return int(part)
    return None


@dataclass(frozen=True)
class LocalDataSource:
    """Files in a folder laid out like ``../shared/data`` (gzip or plain CSV); ``globs`` replaces the default file
    globs of any dataset (relative to ``root``)."""

    root: Path
    globs: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def files(self, dataset: str) -> list[SourceFile]:
        found: dict[str, Path] = {}
        for pattern in self.globs.get(dataset) or _local_patterns(dataset):
            for path in sorted(self.root.glob(pattern)):
                stem = path.name.removesuffix(".gz")
                found.setdefault(stem, path)  # prefer whichever sorts first: .csv before .csv.gz
        return [
            SourceFile(name=str(p.relative_to(self.root)), location=str(p), year=_year_of(p.name))
            for p in found.values()
        ]

    def read(self, file: SourceFile) -> bytes:
        raw = Path(file.location).read_bytes()
        return gzip.decompress(raw) if file.location.endswith(".gz") else raw

    def fingerprint(self) -> dict[str, str]:
        tokens = {}
        for path in sorted(self.root.rglob("*")):
            if path.is_file():
                st = path.stat()
                tokens[str(path.relative_to(self.root))] = f"{st.st_size}:{st.st_mtime_ns}"
        return tokens


@dataclass(frozen=True)
class UpstreamDataSource:
    """The public upstream files, read over HTTP(S). Missing files (404) are skipped, not errors.

    Sackmann's repositories hold the same CSV files as the local folder (uncompressed).
    Bookmaker odds come from tennis-data.co.uk's yearly workbooks; they are converted by
    ``feeds.historical`` into the two odds layouts of the local folder.
    """

    first_year: int = 1968
    last_year: int = field(default_factory=lambda: dt.date.today().year)
    atp_base: str = SACKMANN_ATP
    wta_base: str = SACKMANN_WTA
    pbp_base: str = SACKMANN_PBP
    slam_base: str = SACKMANN_SLAM_PBP
    odds_base: str = TENNIS_DATA
    timeout_s: float = 60.0
    retries: int = 4

    def _years(self, first: int) -> Iterable[int]:
        return range(max(first, self.first_year), self.last_year + 1)

    def files(self, dataset: str) -> list[SourceFile]:
        a, p, s, o = self.atp_base, self.pbp_base, self.slam_base, self.odds_base
        if dataset == "atp_matches":
            return [SourceFile(f"atp_matches_{y}.csv", f"{a}/atp_matches_{y}.csv", y) for y in self._years(1968)]
        if dataset == "atp_matches_qual_chall":
            return [
                SourceFile(f"atp_matches_qual_chall_{y}.csv", f"{a}/atp_matches_qual_chall_{y}.csv", y)
                for y in self._years(1978)
            ]
        if dataset == "atp_players":
            return [SourceFile("atp_players.csv", f"{a}/atp_players.csv")]
        if dataset == "wta_matches":
            w = self.wta_base
            return [SourceFile(f"wta_matches_{y}.csv", f"{w}/wta_matches_{y}.csv", y) for y in self._years(1968)]
        if dataset == "wta_players":
            return [SourceFile("wta_players.csv", f"{self.wta_base}/wta_players.csv")]
        if dataset == "wta_odds_slams":  # tennis-data.co.uk's women's workbooks: <year>w/<year>.xlsx
            return [
                SourceFile(
                    f"tennis-data {y}w", f"{o}/{y}w/{y}.{'xlsx' if y >= 2013 else 'xls'}", y, layout="tennis-data"
                )
                for y in self._years(2007)
            ]
        if dataset in ("odds_tour", "odds_slams"):
            first = 2013 if dataset == "odds_tour" else 2000
            return [
                SourceFile(f"tennis-data {y}", f"{o}/{y}/{y}.{'xlsx' if y >= 2013 else 'xls'}", y, layout="tennis-data")
                for y in self._years(first)
            ]
        if dataset == "pbp_matches":
            return [
                SourceFile(f"{n}.csv", f"{p}/{n}.csv")
                for n in (
                    "pbp_matches_atp_main_archive",
                    "pbp_matches_atp_qual_archive",
                    "pbp_matches_atp_main_current",
                    "pbp_matches_atp_qual_current",
                )
            ]
        if dataset in ("slam_matches", "slam_points"):
            kind = dataset.removeprefix("slam_")
            return [
                SourceFile(f"{y}-{slam}-{kind}.csv", f"{s}/{y}-{slam}-{kind}.csv", y)
                for y in self._years(2011)
                for slam in SLAMS
            ]
        if dataset in ("reference_name_mapping", "wta_reference_name_mapping"):
            return []  # a measurement aid that exists only in the local folder
        raise KeyError(dataset)

    def read(self, file: SourceFile) -> bytes:
        delay = 1.0
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(file.location, timeout=self.timeout_s) as resp:
                    raw = resp.read()
                return gzip.decompress(raw) if file.location.endswith(".gz") else raw
            except urllib.error.HTTPError as exc:
                if exc.code == 404:
                    raise FileNotFoundError(file.location) from exc
                if exc.code < 500 or attempt == self.retries:
                    raise
            except (urllib.error.URLError, TimeoutError):
                if attempt == self.retries:
                    raise
            time.sleep(delay * (1 + random.random()))
            delay *= 2
        raise AssertionError("unreachable")

    def fingerprint(self) -> dict[str, str]:
        return {}  # upstream changes are picked up by the weekly schedule, not the file sensor


def load_globs(path: Path | None) -> dict[str, list[str]]:
    """File globs per dataset from a TOML file (``COURTSIDE_SOURCES``)::

        [globs]
        pbp_matches = ["pbp/pbp_matches_atp_*.csv*"]

    A dataset not named keeps its default globs; an unknown dataset or a glob that is not text is refused."""
    if path is None:
        return {}
    import tomllib

    with path.open("rb") as fh:
        table = tomllib.load(fh).get("globs", {})
    known = set(DATASETS)
    out: dict[str, list[str]] = {}
    for dataset, globs in table.items():
        if dataset not in known:
            raise ValueError(f"{path}: [globs] names {dataset!r}, not a dataset (known: {', '.join(sorted(known))})")
        if isinstance(globs, str):
            globs = [globs]
        if not isinstance(globs, list) or not globs or not all(isinstance(g, str) and g for g in globs):
            raise ValueError(f"{path}: [globs] {dataset} must be a glob or a list of globs")
        out[dataset] = list(globs)
    return out


DATASETS = (
    "atp_matches",
    "atp_matches_qual_chall",
    "atp_players",
    "wta_matches",
    "wta_players",
    "wta_odds_slams",
    "odds_tour",
    "odds_slams",
    "reference_name_mapping",
    "wta_reference_name_mapping",
    "pbp_matches",
    "slam_matches",
    "slam_points",
)


def data_source(data_dir: str, globs: Mapping[str, Sequence[str]] | None = None) -> DataSource:
    """The source for a COURTSIDE_DATA_DIR value (a folder, or ``upstream``); ``globs``: a folder's file globs."""
    if data_dir == "upstream":
        return UpstreamDataSource()
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"COURTSIDE_DATA_DIR={data_dir!r} is not a folder; point it at a copy of the shared "
            "tennis data (laid out like ../shared/data) or set it to 'upstream'"
        )
    return LocalDataSource(root, dict(globs or {}))


def sha256_hex(chunks: Iterable[bytes]) -> str:
    """Content hash of a sequence of byte strings (order matters)."""
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(hashlib.sha256(chunk).digest())
    return h.hexdigest()


def bytes_io(raw: bytes) -> io.BytesIO:
    """A fresh readable buffer over ``raw``."""
    return io.BytesIO(raw)
