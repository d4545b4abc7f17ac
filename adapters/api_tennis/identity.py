"""API-Tennis's players as our players: "N. Djokovic" (its key 2101) -> Sackmann id 104925.

``LiveIdentity.identify(start)`` takes a match's start message, resolves both players and returns the message
with our player ids. A player the venue named before keeps the answer stored for its key (``venue_players``: the
rules' answer, or an operator's, which always stands); a new one is resolved by the identity rules
(``features.identity.match_full_names``: the pair's meetings, else a name only one active player fits) against
the warehouse's matches and players. The rules resolve a match's two names together, so when one is ambiguous
both wait. A name the rules cannot resolve for certain (two Zverevs, a newcomer) is never guessed: the id stays
empty, the name joins the review list (``storage.identity.review_list``, the API's ``/live/identity/review``) and
the match is followed without trading (``tradable`` is False: no market is resolved to it) until an operator says
who it is (``POST /control/identity``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from features.identity import PlayerIndex, match_full_names
from feeds.live.protocol import MatchEvent
from storage import identity as store

log = logging.getLogger(__name__)

VENUE = "api-tennis"


@dataclass
class LiveIdentity:
    matches: pd.DataFrame
    players: pd.DataFrame
    db: Engine
    untradable: set[str] = field(default_factory=set)
    """Event keys of the matches followed without trading (a player not resolved)."""

    def __post_init__(self) -> None:
        self._index = PlayerIndex(self.matches, self.players)

    @classmethod
    def from_warehouse(cls, warehouse: Any, db: Engine) -> LiveIdentity:
        return cls(pd.read_parquet(warehouse / "matches.parquet"), pd.read_parquet(warehouse / "players.parquet"), db)

    def tradable(self, event_key: str) -> bool:
        return event_key not in self.untradable

    def identify(self, start: MatchEvent, keys: tuple[Any, Any] = (None, None)) -> MatchEvent:
        """``start`` with our ids of its players (``keys``: the venue's player keys, when it gives them)."""
        names = (start.event_first_player, start.event_second_player)
        venue_keys = tuple(str(k) if k not in (None, "") else name for k, name in zip(keys, names, strict=True))
        stored = [store.known_player(self.db, VENUE, k) for k in venue_keys]
        ids: list[int | None] = [s["player_id"] if s and s["status"] != store.UNRESOLVED else None for s in stored]
        if any(i is None for i in ids):
            frame = pd.DataFrame({"a": [names[0]], "b": [names[1]], "d": [start.event_date]})
            found = match_full_names(frame, ["a", "b"], "d", self.matches, self.players, index=self._index)
            method = str(found["match_method"].iloc[0])
            for n, col in enumerate(("a_id", "b_id")):
                if ids[n] is not None:
                    continue
                value = found[col].iloc[0]
                pid = None if pd.isna(value) else int(value)
                row = store.record_player(self.db, VENUE, venue_keys[n], names[n], pid, method)
                ids[n] = row["player_id"] if row["status"] != store.UNRESOLVED else None
        if any(i is None for i in ids):
            self.untradable.add(start.event_key)
            log.warning("match %s followed without trading: player(s) not identified %s", start.event_key, names)
        else:
            self.untradable.discard(start.event_key)
        return start.model_copy(update={"first_player_key": ids[0], "second_player_key": ids[1]})
