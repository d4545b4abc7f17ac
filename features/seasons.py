"""Pre-match features a season at a time, exactly equal to one walk over the whole history.

A season here is a calendar year of ``tourney_date`` (the tournament's Monday): the clean match table is ordered by
``tourney_date`` first, so each year is one contiguous block of that order, and walking the years one after the
other from the previous year's ``FeatureState`` gives the same features, bit for bit, as walking everything at once
(Sackmann's season files are not such blocks: a file's first tournament can start in the last days of the year
before, while the previous season's last ones are still being played).

``SeasonStore`` keeps, per tour, each year's feature rows (a Parquet file) and some of the states after a year
(checkpoints: every ``CHECKPOINT_EVERY``-th year and the last year of every run). Each checkpoint carries the
fingerprint of every result it has seen; a checkpoint whose results have changed since (an erratum, a corrected
file) is not used. Updating a year starts from the newest usable checkpoint before it and walks the years in
between in memory, so the answer never depends on which years happened to be computed before.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from features.prematch import FeatureState, build_prematch_features


def _code_version() -> str:
    """A hash of the code a state is built by (the feature, rating and Markov modules): a checkpoint written by other
    code is never continued from, even when its results are the same."""
    import features.markov.scalar as markov
    import features.prematch as prematch
    import features.ratings as ratings

    digest = hashlib.sha256()
    for module in (prematch, ratings, markov):
        digest.update(Path(str(module.__file__)).read_bytes())
    return digest.hexdigest()[:16]


CODE_VERSION = _code_version()

CHECKPOINT_EVERY = 10
"""Keep the state after every tenth year (1979, 1989, ...) besides the last year of each run."""

_NOT_HASHED = ("order",)
"""Columns of the clean table that move when an earlier year changes without this year's results changing."""


def year_of(matches: pd.DataFrame) -> pd.Series:
    """The season (calendar year of ``tourney_date``) of each clean match."""
    return matches["tourney_date"].dt.year


def players_fingerprint(players: pd.DataFrame) -> str:
    """A hash of the player register (birth dates, heights and hands are features of every season)."""
    return hashlib.sha256(pd.util.hash_pandas_object(players, index=False).to_numpy().tobytes()).hexdigest()[:16]


def year_fingerprints(matches: pd.DataFrame, players: pd.DataFrame | None = None) -> dict[int, str]:
    """A hash of each year's results (every column but ``_NOT_HASHED``), chained, and started from the code version
    and the player register: the fingerprint of a year changes when any result of that year or of an earlier year
    changes, when a player's facts change, or when the feature code does."""
    cols = [c for c in matches.columns if c not in _NOT_HASHED]
    rows = pd.util.hash_pandas_object(matches[cols], index=False).to_numpy()
    years = year_of(matches).to_numpy()
    out: dict[int, str] = {}
    chain = hashlib.sha256(CODE_VERSION.encode())
    if players is not None:
        chain.update(players_fingerprint(players).encode())
    for year in sorted(set(years.tolist())):
        chain.update(str(year).encode())
        chain.update(rows[years == year].tobytes())
        out[int(year)] = chain.copy().hexdigest()[:16]
    return out


@dataclass
class Checkpoint:
    """The feature state after ``year``, and the fingerprint of the results it has seen."""

    year: int
    fingerprint: str
    state: FeatureState


@dataclass(frozen=True)
class YearResult:
    """What updating one year produced."""

    year: int
    rows: int
    matches: int
    fingerprint: str


class SeasonStore:
    """One tour's per-year feature rows and state checkpoints under ``root``."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def features_path(self, year: int) -> Path:
        return self.root / "features" / f"{year}.parquet"

    def _checkpoint_path(self, year: int) -> Path:
        return self.root / "state" / f"{year}.pickle"

    def checkpoints(self) -> list[int]:
        folder = self.root / "state"
        return sorted(int(p.stem) for p in folder.glob("*.pickle")) if folder.exists() else []

    def _load(self, year: int) -> Checkpoint | None:
        """The checkpoint of ``year``, or None when it cannot be read (written by other code, cut short)."""
        try:
            with self._checkpoint_path(year).open("rb") as fh:
                checkpoint = pickle.load(fh)
        except Exception:  # an unreadable checkpoint is only a cache miss: the walk starts earlier
            return None
        return checkpoint if isinstance(checkpoint, Checkpoint) else None

    def _save(self, checkpoint: Checkpoint) -> None:
        path = self._checkpoint_path(checkpoint.year)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, lambda fh: pickle.dump(checkpoint, fh, protocol=pickle.HIGHEST_PROTOCOL))

    def _start(self, before: int, fingerprints: dict[int, str]) -> tuple[int | None, FeatureState | None]:
        """The newest usable checkpoint of a year before ``before``: (its year, its state), or (None, None)."""
        for year in reversed([y for y in self.checkpoints() if y < before]):
            expected = fingerprints.get(year, _chain_before(fingerprints, year))
            checkpoint = self._load(year)
            if checkpoint is not None and checkpoint.fingerprint == expected:
                return year, checkpoint.state
        return None, None

    def update(
        self,
        matches: pd.DataFrame,
        players: pd.DataFrame,
        years: Iterable[int],
        first_season: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[YearResult]:
        """Recompute the feature rows of ``years`` (contiguous, ascending) from the clean ``matches``: start from
        the newest usable checkpoint, walk to the first year, then write each year's rows; checkpoint the last year
        and every ``CHECKPOINT_EVERY``-th."""
        wanted = sorted(set(years))
        if not wanted:
            return []
        if wanted != list(range(wanted[0], wanted[-1] + 1)):
            raise ValueError(f"years must be contiguous: {wanted}")
        fingerprints = year_fingerprints(matches, players)
        year_col = year_of(matches).to_numpy()
        start_year, state = self._start(wanted[0], fingerprints)
        fresh = FeatureState.with_players(players)  # the static facts as the players file has them now
        if state is None:
            state = fresh
        else:
            state.info = fresh.info
        emit_all = matches["is_tour_main"].to_numpy() & (year_col >= first_season)
        # the years between the checkpoint and the first wanted year: walked in memory, nothing written
        lo = (start_year + 1) if start_year is not None else int(year_col.min()) if len(year_col) else wanted[0]
        gap = (year_col >= lo) & (year_col < wanted[0])
        if gap.any():
            _, state = build_prematch_features(
                matches[gap], players, pd.Series(np.zeros(int(gap.sum()), bool)), state=state
            )
        results = []
        for i, year in enumerate(wanted):
            if progress:
                progress(i, len(wanted))
            sel = year_col == year
            rows = matches[sel]
            table, state = build_prematch_features(rows, players, pd.Series(emit_all[sel]), state=state)
            path = self.features_path(year)
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, functools.partial(_write_parquet, table))
            fingerprint = fingerprints.get(year, _chain_before(fingerprints, year))
            if year == wanted[-1] or year % CHECKPOINT_EVERY == CHECKPOINT_EVERY - 1:
                self._save(Checkpoint(year, fingerprint, state))
            results.append(YearResult(year, len(table), int(sel.sum()), fingerprint))
        if progress:
            progress(len(wanted), len(wanted))
        return results

    def read(self, years: Iterable[int] | None = None) -> pd.DataFrame:
        """The feature rows of ``years`` (default: every year stored), in order."""
        folder = self.root / "features"
        stored = sorted(int(p.stem) for p in folder.glob("*.parquet")) if folder.exists() else []
        chosen = stored if years is None else [y for y in sorted(set(years)) if y in stored]
        frames = [pd.read_parquet(self.features_path(y)) for y in chosen]
        frames = [f for f in frames if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _atomic_write(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write ``path`` through a temporary file of its own in the same folder, then rename: a crash or a second
    writer never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_parquet(table: pd.DataFrame, fh: IO[bytes]) -> None:
    table.to_parquet(fh, index=False)


def _chain_before(fingerprints: dict[int, str], year: int) -> str:
    """The fingerprint of a year without results: that of the last year before it that has some (or 'empty')."""
    earlier = [y for y in fingerprints if y < year]
    return fingerprints[max(earlier)] if earlier else f"empty-{CODE_VERSION}"
