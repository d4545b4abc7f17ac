"""Player identity: match bookmaker and point-by-point player names to Sackmann player ids.

Two spellings of a player arrive from outside:

* bookmaker rows (tennis-data.co.uk) write ``"Surname I."``: ``Djokovic N.``, ``Del Potro J.M.``,
  ``Carreno-Busta P.``, ``Kuznetsov An.``, ``Bogomolov Jr. A.`` ... with inconsistent hyphens,
  accents, spaces and initials of varying length;
* point-by-point rows write full names: ``"Marius Copil"``, ``"Juan Martin Del Potro"``.

A name alone rarely identifies a player for certain (there are several ``Kuznetsov A.``, and
spellings drift), but a *pair* of players who actually met in a Sackmann match in a tournament
whose start (``tourney_date``, a Monday) lies shortly before the row's date almost always does.
So every row is resolved in three steps, strongest first:

1. ``pair`` / ``pair+loose``: both names give candidate ids (surname + first initial(s),
   tolerant of hyphens, particles, multi-part surnames, short given names; ``loose`` when a
   name fits only partly); the one candidate pair that met in a tournament starting in
   [date - 20 days, date + 3 days] wins. Two distinct pairs that fit equally well leave the row
   unmatched: we never guess. The pair's meeting that fits the row best (round, winner, days
   since the tournament's Monday, tournament name) becomes ``match_id``, one row per meeting.
2. ``pair+fuzzy``: only one name gives candidates; among the opponents a candidate met in the
   window, the single one whose name is a close (difflib) match to the other name is taken.
3. ``names``: no Sackmann match links the two (the source has a match Sackmann lacks, or a
   wrong date); each name is accepted only when exactly one well-fitting candidate played
   within a year of the row. ``match_id`` stays null.

Everything else is ``unmatched: <why>``. The Grand Slam reference mapping shipped with the
data is a measuring stick only (``features.identity_reference``); nothing here reads it.

Names are read and compared by ``features.names``; the odds files are put in the layout
:func:`match_odds` reads by ``features.odds_layout``.

Pure pandas / numpy / stdlib: this is domain code shared by every lane.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.names import (
    NameReading,
    name_similarity,
    name_tokens,
    normalize_name,
    parse_abbreviated,
    parse_full_name,
    reading_level,
    significant_tokens,
    tournament_words,
)

DAYS_BEFORE = 20
"""A row dated ``d`` may belong to a tournament that started up to this many days before ``d``."""
DAYS_AFTER = 3
"""... or up to this many days after ``d`` (qualifying is played before the tournament's Monday)."""
FULL_NAME_DAYS_AFTER = 10
"""The same for point-by-point rows, which include Grand Slam qualifying (a week before)."""

MAX_LEVEL = 3
"""Worst name-match level (0 = exact) at which a player is a candidate for a name; loose
candidates only count when their pair played each other (step 1)."""
ANCHOR_LEVEL = 2
"""Worst level of the well-named side whose opponents are searched in step 2."""
NAMES_LEVEL = 1
"""Worst level at which a name alone (step 3) identifies a player."""
NAMES_DAYS = 365
"""Step 3: a candidate must have played within this many days of the row."""
FUZZY_THRESHOLD = 0.75
"""Least similarity (0..1) of a name to an opponent's name for the ``pair+fuzzy`` step."""

MATCH_COLUMNS = ("match_id", "tourney_date", "round", "winner_id", "loser_id", "winner_name", "loser_name")
"""Columns :class:`PlayerIndex` needs from the Sackmann matches frame (extra ones are ignored)."""

ROUND_CODES: dict[str, frozenset[str]] = {
    "1st round": frozenset({"R128", "R64", "R32", "R16"}),
    "2nd round": frozenset({"R128", "R64", "R32", "R16"}),
    "3rd round": frozenset({"R64", "R32", "R16"}),
    "4th round": frozenset({"R32", "R16"}),
    "quarterfinals": frozenset({"QF"}),
    "semifinals": frozenset({"SF"}),
    "the final": frozenset({"F"}),
    "round robin": frozenset({"RR"}),
}
"""tennis-data.co.uk round name (lower case) -> the Sackmann ``round`` codes it can be."""

QUALIFYING_ROUNDS = frozenset({"Q1", "Q2", "Q3", "Q4"})
MAIN_ROUNDS = frozenset({"R128", "R64", "R32", "R16", "QF", "SF", "F", "RR", "BR"})

ROUND_DAYS: dict[str, tuple[int, int]] = {
    "Q1": (-10, 1),
    "Q2": (-9, 1),
    "Q3": (-8, 1),
    "R128": (-2, 5),
    "R64": (-2, 7),
    "R32": (-2, 9),
    "R16": (-1, 11),
    "QF": (0, 12),
    "SF": (1, 14),
    "F": (2, 15),
    "BR": (2, 15),
    "RR": (-1, 9),
}
"""Plausible days from the tournament's Monday to a match of each Sackmann round (match day
minus ``tourney_date``); used to choose between two meetings of one pair in the window."""
ANY_ROUND_DAYS = (-10, 15)
SAME_EVENT_DAYS = 2
"""Rows of one pair dated this close are one event (a repeated or suspended match)."""

_ROUND_CONFLICT = 10**7  # a fit this bad means the row's round excludes the match: never linked
_DAY_BITS = 18
_DAY_OFFSET = 100_000  # day numbers since 1970 are shifted to stay positive (1700..2400 fit)


# --- round hints ----------------------------------------------------------------------------------


def round_hint(value: object) -> frozenset[str] | None:
    """The Sackmann round codes a source's round text allows: tennis-data names (``1st Round``,
    ``The Final``), Sackmann codes themselves, or a draw label (``Qual``/``Qualifying`` or
    ``Main``). None when unknown."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    if text.lower() in ROUND_CODES:
        return ROUND_CODES[text.lower()]
    if text.upper() in QUALIFYING_ROUNDS | MAIN_ROUNDS:
        return frozenset({text.upper()})
    if text.lower().startswith("qual"):
        return QUALIFYING_ROUNDS
    if text.lower() == "main":
        return MAIN_ROUNDS
    return None


# --- the index over Sackmann players and matches ------------------------------------------------


def _day_numbers(values: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 of a datetime column (int64)."""
    return pd.to_datetime(values).to_numpy().astype("datetime64[D]").astype(np.int64)


def _day_key(ids: np.ndarray, days: np.ndarray) -> np.ndarray:
    return (ids.astype(np.int64) << _DAY_BITS) + (days.astype(np.int64) + _DAY_OFFSET)


class PlayerIndex:
    """Sackmann players who played at least one match, indexed by surname spelling, by career
    (who played when, against whom) and by pair of players. Build it once, match many frames.

    ``matches``: Sackmann matches with the :data:`MATCH_COLUMNS` (``tourney_date`` is the
    tournament's Monday). ``players``: ``player_id, name_first, name_last``. Ids that occur in
    matches but not in ``players`` are named from the matches.
    """

    def __init__(self, matches: pd.DataFrame, players: pd.DataFrame) -> None:
        missing = [c for c in MATCH_COLUMNS if c not in matches.columns]
        if missing:
            raise ValueError(f"matches frame lacks columns {missing}")
        m = matches.loc[matches["winner_id"].notna() & matches["loser_id"].notna() & matches["tourney_date"].notna()]
        self.match_id = m["match_id"].astype(str).to_numpy()
        self.match_round = m["round"].astype(str).to_numpy()
        names_of_tourneys = (
            m["tourney_name"].astype(object).fillna("").astype(str)
            if "tourney_name" in m.columns
            else pd.Series("", index=m.index)
        )
        tourney_words = {t: tournament_words(t) for t in names_of_tourneys.unique().tolist()}
        self.match_tourney_words = names_of_tourneys.map(tourney_words).to_numpy()
        self.match_day = _day_numbers(m["tourney_date"])
        self.winner = m["winner_id"].to_numpy(dtype=np.int64)
        self.loser = m["loser_id"].to_numpy(dtype=np.int64)
        n = len(m)

        # careers: one row per (player, match), sorted by (player, day)
        ids = np.concatenate([self.winner, self.loser])
        opp = np.concatenate([self.loser, self.winner])
        row = np.concatenate([np.arange(n), np.arange(n)])
        days = np.concatenate([self.match_day, self.match_day])
        key = _day_key(ids, days)
        order = np.argsort(key, kind="stable")
        self._career_key = key[order]
        self.career_opp, self.career_row = opp[order], row[order]

        # pairs: one row per match, keyed by (lower id, higher id)
        self.pairs = pd.DataFrame(
            {
                "lo": np.minimum(self.winner, self.loser),
                "hi": np.maximum(self.winner, self.loser),
                "mday": self.match_day,
                "mrow": np.arange(n),
            }
        )

        # names
        known = set(np.unique(ids).tolist())
        self.names: dict[int, list[tuple[tuple[str, ...], tuple[str, ...]]]] = {}
        pl = players.loc[players["player_id"].notna()]
        pl = pl.loc[pl["player_id"].astype(np.int64).isin(known)]
        for pid, first, last in zip(pl["player_id"].astype(np.int64), pl["name_first"], pl["name_last"], strict=True):
            self.names.setdefault(int(pid), []).append((name_tokens(first), name_tokens(last)))
        seen = {pid: {"".join(f + last) for f, last in v} for pid, v in self.names.items()}
        used = pd.DataFrame(
            {"id": ids, "name": pd.concat([m["winner_name"], m["loser_name"]]).to_numpy()}
        ).drop_duplicates()
        for pid, full in zip(used["id"].tolist(), used["name"].tolist(), strict=True):
            tokens = name_tokens(full)
            if len(tokens) < 2 or "".join(tokens) in seen.get(pid, set()):
                continue
            seen.setdefault(pid, set()).add("".join(tokens))
            self.names.setdefault(pid, []).append((tokens[:1], tokens[1:]))
            if len(tokens) > 2:
                self.names[pid].append((tokens[:-1], tokens[-1:]))

        self._by_compact: dict[str, set[int]] = {}
        self._by_token: dict[str, set[int]] = {}
        for pid, variants in self.names.items():
            for _first, last in variants:
                self._by_compact.setdefault("".join(last), set()).add(pid)
                for t in significant_tokens(last):
                    self._by_token.setdefault(t, set()).add(pid)

    # names -> candidates
    def candidates(self, readings: Sequence[NameReading], max_level: int = MAX_LEVEL) -> dict[int, int]:
        """Candidate player ids for a name and the best level (0 = exact) at which each fits."""
        found: dict[int, int] = {}
        for r in readings:
            pool = set(self._by_compact.get("".join(r.surname), ()))
            for t in significant_tokens(r.surname):
                pool |= self._by_token.get(t, set())
            for pid in pool:
                for first, last in self.names[pid]:
                    level = reading_level(r, first, last)
                    if level is not None and level <= max_level and level < found.get(pid, 99):
                        found[pid] = level
        return found

    def similarity(self, readings: Sequence[NameReading], pid: int) -> float:
        """Best :func:`name_similarity` of a name to any spelling of player ``pid``."""
        return max((name_similarity(readings, f, last) for f, last in self.names.get(pid, ())), default=0.0)

    # careers
    def career_slice(self, pid: int, day_from: int, day_to: int) -> slice:
        """Positions in the career arrays of ``pid``'s matches with tourney day in [from, to]."""
        lo = np.searchsorted(self._career_key, _day_key(np.array([pid]), np.array([day_from]))[0])
        hi = np.searchsorted(self._career_key, _day_key(np.array([pid]), np.array([day_to]))[0], side="right")
        return slice(int(lo), int(hi))

    def active_counts(self, pids: np.ndarray, day_from: np.ndarray, day_to: np.ndarray) -> np.ndarray:
        """For each (player, window): how many matches the player played in tournaments starting
        in the window (vectorised)."""
        lo = np.searchsorted(self._career_key, _day_key(pids, day_from))
        hi = np.searchsorted(self._career_key, _day_key(pids, day_to), side="right")
        return hi - lo


# --- row resolution ------------------------------------------------------------------------------


def _explode_pairs(cands1: list[dict[int, int]], cands2: list[dict[int, int]]) -> pd.DataFrame:
    """One row per (row, candidate 1, candidate 2) with the summed level."""
    rows, a_ids, b_ids, levels = [], [], [], []
    for i, (c1, c2) in enumerate(zip(cands1, cands2, strict=True)):
        for a, la in c1.items():
            for b, lb in c2.items():
                if a != b:
                    rows.append(i)
                    a_ids.append(a)
                    b_ids.append(b)
                    levels.append(la + lb)
    frame = pd.DataFrame(
        {
            "row": np.array(rows, dtype=np.int64),
            "a": np.array(a_ids, dtype=np.int64),
            "b": np.array(b_ids, dtype=np.int64),
            "level": np.array(levels, dtype=np.int64),
        }
    )
    frame["lo"] = np.minimum(frame["a"], frame["b"])
    frame["hi"] = np.maximum(frame["a"], frame["b"])
    return frame


@dataclass
class _Hints:
    """What a row says about its match besides the names, used only to choose between two
    meetings of the same pair: allowed Sackmann rounds (None = any), which side won (0 unknown,
    1, 2) and the row's tournament text in compact form ("" unknown)."""

    rounds: list[frozenset[str] | None]
    winner_side: np.ndarray
    tournaments: list[str]

    @classmethod
    def none(cls, n: int) -> _Hints:
        return cls([None] * n, np.zeros(n, dtype=np.int64), [""] * n)


@dataclass
class _Rows:
    """Working state of a resolution: per row, the two names' candidates and the answer so far."""

    days: np.ndarray
    labels: tuple[str, str]
    names: tuple[list[object], list[object]]
    readings: tuple[list[tuple[NameReading, ...]], list[tuple[NameReading, ...]]]
    cands: tuple[list[dict[int, int]], list[dict[int, int]]]
    hints: _Hints
    ids: np.ndarray  # (2, n) int64, -1 = none
    mrow: np.ndarray  # Sackmann match row, -1 = none
    fit: np.ndarray  # how well the linked match fits (see _meeting_fit)
    method: np.ndarray  # object: method, or None while unresolved

    def open_rows(self) -> list[int]:
        return [i for i in range(len(self.days)) if self.method[i] is None]


def _pair_step(index: PlayerIndex, st: _Rows, day_from: np.ndarray, day_to: np.ndarray) -> None:
    """Step 1: the candidate pair that played each other in the window (best summed level)."""
    combos = _explode_pairs(*st.cands)
    hits = combos.merge(index.pairs, on=["lo", "hi"])
    rows = hits["row"].to_numpy()
    hits = hits.loc[(hits["mday"].to_numpy() >= day_from[rows]) & (hits["mday"].to_numpy() <= day_to[rows])]
    if hits.empty:
        return
    hits = hits.loc[hits["level"] == hits.groupby("row")["level"].transform("min")]
    n_pairs = hits.drop_duplicates(["row", "a", "b"]).groupby("row").size()
    for i in n_pairs.index[n_pairs > 1].tolist():
        st.method[i] = "unmatched: several candidate pairs played each other in the window"
    hits = hits.loc[hits["row"].map(n_pairs).to_numpy() == 1].copy()
    hits["fit"] = _meeting_fit(index, st, hits["row"].to_numpy(), hits["mrow"].to_numpy(), hits["a"].to_numpy())
    rows = hits.drop_duplicates("row")
    r = rows["row"].to_numpy()
    st.ids[0, r], st.ids[1, r] = rows["a"].to_numpy(), rows["b"].to_numpy()
    st.method[r] = np.where(rows["level"].to_numpy() > 0, "pair+loose", "pair")
    _link_meetings(st, hits)


def _agree(a: object, b: object, unknown: object) -> bool:
    """Two hints agree when equal or when either is unknown."""
    return unknown in (a, b) or a == b


def _link_meetings(st: _Rows, hits: pd.DataFrame) -> None:
    """Link rows to Sackmann matches one to one. Rows of one pair dated within
    :data:`SAME_EVENT_DAYS` of each other, fitting the same meeting best and with no conflicting
    winner or round, are one event (sources repeat a match, or split a suspended one over two
    days). Events take the pair's meetings in order of fit, so two different events never share
    one Sackmann match, and a meeting in a round the row excludes is never linked. An event left
    without a meeting keeps its (pair-proven) ids and gets no ``match_id``."""
    rows = hits.sort_values(["row", "fit", "mrow"]).drop_duplicates("row")[["row", "lo", "hi", "mrow"]].copy()
    rows["day"] = st.days[rows["row"].to_numpy()]
    rows = rows.sort_values(["lo", "hi", "day", "row"])
    h = st.hints
    events: list[int] = []
    last: tuple[int, int, int, int, int] | None = None  # lo, hi, first day, first row, best mrow
    for i, lo, hi, best, day in rows.itertuples(index=False):
        same = (
            last is not None
            and (lo, hi, best) == (last[0], last[1], last[4])
            and day - last[2] <= SAME_EVENT_DAYS
            and _agree(h.winner_side[i], h.winner_side[last[3]], 0)
            and _agree(h.rounds[i], h.rounds[last[3]], None)
        )
        if not same or last is None:
            last = (lo, hi, day, i, best)
        events.append(last[3])
    event_of = pd.Series(events, index=rows["row"].to_numpy())
    hits = hits.assign(event=hits["row"].map(event_of).to_numpy())
    options = (
        hits.loc[hits["fit"] < _ROUND_CONFLICT]
        .groupby(["event", "mrow"], as_index=False)["fit"]
        .min()
        .sort_values(["fit", "event", "mrow"])
    )
    taken: set[int] = set()
    chosen: dict[int, tuple[int, int]] = {}
    for event, mrow, fit in options.itertuples(index=False):
        if event in chosen or mrow in taken:
            continue
        chosen[event] = (mrow, fit)
        taken.add(mrow)
    for i, event in event_of.items():
        if event in chosen:
            st.mrow[i], st.fit[i] = chosen[event]
        else:
            st.method[i] = f"{st.method[i]} (no match: the pair's meetings fit other rows)"


def _meeting_fit(index: PlayerIndex, st: _Rows, rows: np.ndarray, mrows: np.ndarray, first: np.ndarray) -> np.ndarray:
    """How well each (row, Sackmann match) fits beyond the names, as one sortable number (lower
    is better): round, winner, days since the tournament's Monday, tournament name, then gap."""
    h = st.hints
    codes = index.match_round[mrows]
    round_ok = np.array(
        [h.rounds[i] is None or c in h.rounds[i] for i, c in zip(rows.tolist(), codes.tolist(), strict=True)],
        dtype=bool,
    )
    w, side = index.winner[mrows], h.winner_side[rows]
    winner_ok = (side == 0) | ((side == 1) & (w == first)) | ((side == 2) & (w != first))
    offset = st.days[rows] - index.match_day[mrows]
    bands = np.array([ROUND_DAYS.get(c, ANY_ROUND_DAYS) for c in codes.tolist()], dtype=np.int64).reshape(-1, 2)
    outside = np.maximum(bands[:, 0] - offset, 0) + np.maximum(offset - bands[:, 1], 0)
    named = np.array(
        [
            bool(h.tournaments[i]) and any(word in h.tournaments[i] for word in words)
            for i, words in zip(rows.tolist(), index.match_tourney_words[mrows].tolist(), strict=True)
        ],
        dtype=bool,
    )
    return (
        (~round_ok) * _ROUND_CONFLICT
        + (~winner_ok) * 10**6
        + np.minimum(outside, 99) * 10**4
        + (~named) * 10**3
        + np.minimum(np.abs(offset), 999)
    )


def _fuzzy_step(index: PlayerIndex, st: _Rows, day_from: np.ndarray, day_to: np.ndarray) -> None:
    """Step 2: a well-named candidate of one side played, in the window and in a round the row
    allows, exactly one opponent whose name is close to the other side's name."""
    for i in st.open_rows():
        allowed = st.hints.rounds[i]
        found: dict[tuple[int, int], tuple[int, int]] = {}
        for side in (0, 1):
            other = st.readings[1 - side][i]
            if not other:
                continue
            for pid, level in st.cands[side][i].items():
                if level > ANCHOR_LEVEL:
                    continue
                sl = index.career_slice(pid, int(day_from[i]), int(day_to[i]))
                for opp, row in zip(index.career_opp[sl].tolist(), index.career_row[sl].tolist(), strict=True):
                    if opp == pid or (allowed is not None and index.match_round[row] not in allowed):
                        continue
                    if index.similarity(other, opp) < FUZZY_THRESHOLD:
                        continue
                    pair = (pid, opp) if side == 0 else (opp, pid)
                    found.setdefault(pair, (level, row))
        if not found:
            continue
        if len(found) > 1:
            st.method[i] = "unmatched: several close opponents played in the window"
            continue
        (a, b), (_, row) = next(iter(found.items()))
        st.ids[0, i], st.ids[1, i], st.mrow[i], st.method[i] = a, b, row, "pair+fuzzy"
        st.fit[i] = _meeting_fit(index, st, np.array([i]), np.array([row]), np.array([a]))[0]


def _names_step(index: PlayerIndex, st: _Rows, names_days: int) -> None:
    """Step 3: no Sackmann match links the two names; accept each name's candidate when it is the
    only well-named one (or clearly the best) among players active within ``names_days``."""
    todo = np.array(st.open_rows(), dtype=np.int64)
    if not len(todo):
        return
    got = np.full((2, len(st.days)), -1, dtype=np.int64)
    reasons: dict[int, list[str]] = {int(i): [] for i in todo}
    for side in (0, 1):
        rows, pids, levels = [], [], []
        for i in todo.tolist():
            for pid, level in st.cands[side][i].items():
                rows.append(i)
                pids.append(pid)
                levels.append(level)
        rows_a = np.array(rows, dtype=np.int64)
        pids_a = np.array(pids, dtype=np.int64)
        levels_a = np.array(levels, dtype=np.int64)
        days = st.days[rows_a]
        active = index.active_counts(pids_a, days - names_days, days + names_days) > 0
        options: dict[int, list[tuple[int, int]]] = {}
        for i, pid, level in zip(
            rows_a[active].tolist(), pids_a[active].tolist(), levels_a[active].tolist(), strict=True
        ):
            options.setdefault(i, []).append((level, pid))
        for i in todo.tolist():
            label = f"{st.labels[side]} {st.names[side][i]!r}"
            if not st.readings[side][i]:
                reasons[i].append(f"{label} is not a player name")
            elif not st.cands[side][i]:
                reasons[i].append(f"{label}: no player of that name")
            elif i not in options:
                reasons[i].append(f"{label}: no player of that name active then")
            else:
                opts = sorted(options[i])
                if opts[0][0] > NAMES_LEVEL:
                    reasons[i].append(f"{label}: only loose name matches")
                elif len(opts) == 1 or opts[1][0] >= opts[0][0] + 2:
                    got[side, i] = opts[0][1]
                else:
                    reasons[i].append(f"{label}: {len(opts)} players of that name active then")
    for i in todo.tolist():
        a, b = got[0, i], got[1, i]
        if a >= 0 and b >= 0 and a != b:
            st.ids[0, i], st.ids[1, i], st.method[i] = a, b, "names"
        else:
            why = "; ".join(reasons[i]) or "both names give the same player"
            st.method[i] = f"unmatched: {why}"


def _resolve(
    index: PlayerIndex,
    days: np.ndarray,
    labels: tuple[str, str],
    names: tuple[list[object], list[object]],
    readings: tuple[list[tuple[NameReading, ...]], list[tuple[NameReading, ...]]],
    hints: _Hints,
    days_before: int,
    days_after: int,
    names_days: int,
) -> _Rows:
    """Run the three steps over every row (see the module docstring)."""
    cache: dict[tuple[NameReading, ...], dict[int, int]] = {}

    def lookup(r: tuple[NameReading, ...]) -> dict[int, int]:
        if r not in cache:
            cache[r] = index.candidates(r)
        return cache[r]

    n = len(days)
    undated = days == np.iinfo(np.int64).min  # NaT
    days = np.where(undated, 0, days)
    first, second = ([{} if undated[i] else lookup(r) for i, r in enumerate(side)] for side in readings)
    method = np.full(n, None, dtype=object)
    method[undated] = "unmatched: no date"
    st = _Rows(
        days=days,
        labels=labels,
        names=names,
        readings=readings,
        cands=(first, second),
        hints=hints,
        ids=np.full((2, n), -1, dtype=np.int64),
        mrow=np.full(n, -1, dtype=np.int64),
        fit=np.zeros(n, dtype=np.int64),
        method=method,
    )
    day_from, day_to = days - days_before, days + days_after
    _pair_step(index, st, day_from, day_to)
    _fuzzy_step(index, st, day_from, day_to)
    _names_step(index, st, names_days)
    return st


def _finish(frame: pd.DataFrame, index: PlayerIndex, cols: Sequence[str], st: _Rows) -> pd.DataFrame:
    out = frame.copy()
    for col, ids in zip(cols, st.ids, strict=True):
        out[col] = pd.array([int(x) if x >= 0 else None for x in ids.tolist()], dtype="Int64")
    mids = [index.match_id[r] if r >= 0 else None for r in st.mrow.tolist()]
    out["match_id"] = pd.array(mids, dtype="string")
    out["match_method"] = pd.array(st.method.tolist(), dtype="string")
    return out


# --- public matching API ------------------------------------------------------------------------


def match_odds(
    odds: pd.DataFrame,
    matches: pd.DataFrame,
    players: pd.DataFrame,
    *,
    index: PlayerIndex | None = None,
    days_before: int = DAYS_BEFORE,
    days_after: int = DAYS_AFTER,
    names_days: int = NAMES_DAYS,
) -> pd.DataFrame:
    """Give bookmaker rows Sackmann player ids and the Sackmann match they are about.

    ``odds`` is in the neutral layout (:func:`odds_tour_neutral`, :func:`odds_slams_neutral`):
    ``date`` (match day), ``tournament``, ``round`` (tennis-data round names, used to choose
    between two meetings of a pair), ``p1_name``, ``p2_name`` ("Surname I."), optionally
    ``winner_name`` (same use); any other columns are passed through. ``matches`` / ``players``
    are the Sackmann frames (see :class:`PlayerIndex`); pass a prebuilt ``index`` to reuse it.

    Returns the rows with ``p1_id``, ``p2_id`` (Int64, null when unknown), ``match_id`` (null
    when no Sackmann match is linked) and ``match_method``: ``pair`` (both names fit, the pair
    played), ``pair+loose`` (same, a name fits only loosely), ``pair+fuzzy`` (one name fits, the
    other is its only close-named opponent), ``names`` (each name alone, no match linked) or
    ``unmatched: <why>``.
    """
    index = index if index is not None else PlayerIndex(matches, players)
    n = len(odds)
    names = (odds["p1_name"].tolist(), odds["p2_name"].tolist())
    readings = ([_one(parse_abbreviated(x)) for x in names[0]], [_one(parse_abbreviated(x)) for x in names[1]])
    rounds: list[frozenset[str] | None] = (
        [round_hint(x) for x in odds["round"].tolist()] if "round" in odds.columns else [None] * n
    )
    winner_side = np.zeros(n, dtype=np.int64)
    if "winner_name" in odds.columns:
        w = odds["winner_name"].astype("string")
        winner_side[(w == odds["p1_name"].astype("string")).fillna(False).to_numpy(bool)] = 1
        winner_side[(w == odds["p2_name"].astype("string")).fillna(False).to_numpy(bool)] = 2
    hints = _Hints(rounds, winner_side, _compact_texts(odds, "tournament"))
    st = _resolve(
        index, _day_numbers(odds["date"]), ("p1", "p2"), names, readings, hints, days_before, days_after, names_days
    )
    return _finish(odds, index, ("p1_id", "p2_id"), st)


def _compact_texts(frame: pd.DataFrame, col: str | None) -> list[str]:
    """A text column in compact normalised form ("" where absent)."""
    if col is None or col not in frame.columns:
        return [""] * len(frame)
    return [normalize_name(x).replace(" ", "") for x in frame[col].tolist()]


def _one(reading: NameReading | None) -> tuple[NameReading, ...]:
    return (reading,) if reading is not None else ()


def match_full_names(
    frame: pd.DataFrame,
    name_cols: Sequence[str],
    date_col: str,
    matches: pd.DataFrame,
    players: pd.DataFrame,
    *,
    index: PlayerIndex | None = None,
    days_before: int = DAYS_BEFORE,
    days_after: int = FULL_NAME_DAYS_AFTER,
    names_days: int = NAMES_DAYS,
    winner_col: str | None = None,
    tournament_col: str | None = None,
    round_col: str | None = None,
) -> pd.DataFrame:
    """Give rows naming two players in full (``"Marius Copil"``) Sackmann ids and match.

    ``name_cols``: the two columns holding the players' full names (e.g. ``server1``,
    ``server2``); ``date_col``: the match day. Optional ``winner_col`` (1 or 2: which of the two
    won) and ``tournament_col`` (free text) help choose between two meetings of one pair;
    ``round_col`` (see :func:`round_hint`) also forbids linking a match of another round, so
    give it only when the source's rounds are reliable (the point-by-point ``draw`` label is
    not: its ``Main`` files hold qualifying matches too).

    Same steps as :func:`match_odds`; the default window reaches further after the date because
    point-by-point feeds include Grand Slam qualifying, played the week before the tournament's
    Monday. Returns the rows with
    ``<col>_id`` per name column (Int64), ``match_id`` and ``match_method``. Doubles pairs
    (``"A/B"``) and team labels stay unmatched with that reason.
    """
    if len(name_cols) != 2:
        raise ValueError("name_cols must name exactly two columns (the two players)")
    index = index if index is not None else PlayerIndex(matches, players)
    c1, c2 = name_cols
    names = (frame[c1].tolist(), frame[c2].tolist())
    readings = ([parse_full_name(x) for x in names[0]], [parse_full_name(x) for x in names[1]])
    n = len(frame)
    hints = _Hints.none(n)
    if winner_col is not None:
        won = pd.to_numeric(frame[winner_col], errors="coerce")
        hints.winner_side = won.where(won.isin([1, 2]), 0).fillna(0).to_numpy(dtype=np.int64)
    hints.tournaments = _compact_texts(frame, tournament_col)
    if round_col is not None:
        hints.rounds = [round_hint(x) for x in frame[round_col].tolist()]
    st = _resolve(
        index, _day_numbers(frame[date_col]), (c1, c2), names, readings, hints, days_before, days_after, names_days
    )
    return _finish(frame, index, (f"{c1}_id", f"{c2}_id"), st)
