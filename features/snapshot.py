"""What the live lane knows about every player now: the feature state after the last match in the
data, each player's latest ranking, and how to find a player by name.

Built by the pipeline after the feature walk and loaded by the prediction service, so live
features come from the same ``FeatureState`` code as the training features.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import cached_property

import pandas as pd

from features.matches import ROUND_ORDER
from features.names import normalize_name
from features.prematch import Entrant, FeatureState, MatchContext


class UnknownPlayer(LookupError):
    """A player id or name the snapshot does not know (or a name shared by several players)."""


@dataclass
class PlayerSnapshot:
    """The feature state after ``as_of`` plus latest rankings and a name index."""

    state: FeatureState
    as_of: pd.Timestamp
    """Date of the last match in the state: predictions are for matches after it."""
    rank: dict[int, tuple[float, float]] = field(default_factory=dict)
    """Latest (rank, ranking points) seen for each player."""
    names: dict[str, list[int]] = field(default_factory=dict)
    """Normalised full name -> player ids (more than one id when the name is shared)."""
    display: dict[int, str] = field(default_factory=dict)
    last_played: dict[int, pd.Timestamp] = field(default_factory=dict)

    @classmethod
    def build(cls, state: FeatureState, matches: pd.DataFrame, players: pd.DataFrame) -> PlayerSnapshot:
        """The snapshot after every match of ``matches`` (the clean, ordered table)."""
        sides = []
        for side in ("winner", "loser"):
            sides.append(
                pd.DataFrame(
                    {
                        "player_id": matches[f"{side}_id"].to_numpy(),
                        "order": matches["order"].to_numpy(),
                        "date": matches["match_date"].to_numpy(),
                        "rank": matches[f"{side}_rank"].astype(float).to_numpy(),
                        "points": matches[f"{side}_rank_points"].astype(float).to_numpy(),
                    }
                )
            )
        long = pd.concat(sides).sort_values("order")
        last = long.groupby("player_id").tail(1)
        ranked = long.dropna(subset=["rank"]).groupby("player_id").tail(1)
        rank = {int(r.player_id): (float(r.rank), float(r.points)) for r in ranked.itertuples()}
        last_played = {int(r.player_id): pd.Timestamp(r.date) for r in last.itertuples()}
        names: dict[str, list[int]] = {}
        display: dict[int, str] = {}
        for pid, full in zip(players["player_id"], players["full_name"], strict=True):
            pid = int(pid)
            display[pid] = full
            key = normalize_name(full)
            if key:
                names.setdefault(key, []).append(pid)
        return cls(state, pd.Timestamp(matches["match_date"].max()), rank, names, display, last_played)

    def resolve(self, player: int | str) -> int:
        """The player id for an id or a full name; raises ``UnknownPlayer`` with the reason."""
        # ASCII digits only: "¹".isdigit() is True and int("¹") raises (found by schemathesis)
        if isinstance(player, int) or (isinstance(player, str) and player.isascii() and player.isdigit()):
            pid = int(player)
            if pid not in self.display:
                raise UnknownPlayer(f"unknown player id {pid}")
            return pid
        ids = self.names.get(normalize_name(player), [])
        if not ids:
            close = self.suggest(player)
            hint = "; did you mean " + " or ".join(f"{self.display[i]} ({i})" for i in close) + "?" if close else ""
            raise UnknownPlayer(f"unknown player name {player!r}{hint}")
        if len(ids) > 1:  # prefer the one who played most recently, if only one ever played
            active = [i for i in ids if i in self.last_played]
            if len(active) != 1:
                raise UnknownPlayer(f"player name {player!r} is ambiguous: ids {sorted(ids)}")
            return active[0]
        return ids[0]

    def suggest(self, name: str, n: int = 3) -> list[int]:
        """Ids of the players whose full name is closest to ``name`` -- a misspelling ("Novak Djokovich"), or the
        bookmakers' "Surname I." ("Djokovic N.") -- players who have played first; at most ``n``. Compares with the
        names sharing the surname's first three letters only, so a junk name costs nothing."""
        words = normalize_name(name).split()
        if not words:
            return []
        found: list[str] = []
        if len(words) >= 2 and len(words[-1]) == 1:  # "djokovic n": surname, then the first name's initial
            surname, initial = " ".join(words[:-1]), words[-1]
            found = [k for k in self._by_prefix.get(surname[:3], []) if k.endswith(" " + surname) and k[0] == initial]
        if not found:
            pool = {k for w in (words[-1], words[0]) for k in self._by_prefix.get(w[:3], [])}
            found = difflib.get_close_matches(" ".join(words), sorted(pool), n=n, cutoff=0.8)
        ids = list(dict.fromkeys(i for k in found for i in self.names.get(k, [])))
        return sorted(ids, key=lambda i: (i not in self.last_played, ids.index(i)))[:n]

    @cached_property
    def _by_prefix(self) -> dict[str, list[str]]:
        """Known names by the first three letters of each of their words (built on first use)."""
        out: dict[str, list[str]] = {}
        for key in self.names:
            for prefix in {word[:3] for word in key.split()}:
                out.setdefault(prefix, []).append(key)
        return out

    def entrant(self, player_id: int, rank: float | None = None, points: float | None = None) -> Entrant:
        """The player with the given ranking, or the latest one known."""
        known_rank, known_points = self.rank.get(player_id, (float("nan"), float("nan")))
        return Entrant(
            player_id, known_rank if rank is None else float(rank), known_points if points is None else float(points)
        )

    def features(
        self,
        a: Entrant,
        b: Entrant,
        date: pd.Timestamp,
        surface: str | None,
        best_of: int,
        level: str,
        round_name: str = "R32",
    ) -> list[float]:
        """Pre-match features of A vs B for a match on ``date`` (after ``as_of``)."""
        ctx = MatchContext(pd.Timestamp(date), surface, best_of, level, ROUND_ORDER.get(round_name, 7))
        return self.state.features(a, b, ctx)
