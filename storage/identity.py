"""Outside venues' players and who they are in our data (``venue_players``): what the live identity of
``adapters.api_tennis.identity`` resolved, what an operator set by hand (never overwritten by the rules), and the
review list of names nobody resolved yet."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from storage.models import VenuePlayer

RESOLVED, OPERATOR, UNRESOLVED = "resolved", "operator", "unresolved"


def _row(p: VenuePlayer) -> dict[str, Any]:
    return {
        "venue": p.venue,
        "venue_key": p.venue_key,
        "name": p.name,
        "player_id": p.player_id,
        "status": p.status,
        "method": p.method,
        "first_seen": p.first_seen,
        "updated_at": p.updated_at,
    }


def known_player(engine: Engine, venue: str, venue_key: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        found = conn.execute(
            select(VenuePlayer).where(VenuePlayer.venue == venue, VenuePlayer.venue_key == venue_key)
        ).first()
    return None if found is None else dict(found._mapping)


def record_player(
    engine: Engine, venue: str, venue_key: str, name: str, player_id: int | None, method: str
) -> dict[str, Any]:
    """What the rules found for a venue's player (an operator's answer stands); returns the row as it is now."""
    from sqlalchemy.orm import Session

    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        row = session.get(VenuePlayer, (venue, venue_key))
        if row is None:
            row = VenuePlayer(
                venue=venue,
                venue_key=venue_key,
                name=name,
                first_seen=now,
                status=UNRESOLVED,
                method="",
                updated_at=now,
            )
            session.add(row)
        if row.status != OPERATOR:
            row.name = name
            row.player_id = player_id
            row.status = RESOLVED if player_id is not None else UNRESOLVED
            row.method = method[:2000]
            row.updated_at = now
        return _row(row)


def set_player(engine: Engine, venue: str, venue_key: str, player_id: int, who: str) -> dict[str, Any]:
    """An operator says who a venue's player is (it stands against the rules from then on)."""
    from sqlalchemy.orm import Session

    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        row = session.get(VenuePlayer, (venue, venue_key))
        if row is None:
            raise KeyError(f"{venue} player {venue_key} was never seen")
        row.player_id, row.status, row.method, row.updated_at = player_id, OPERATOR, f"set by {who}"[:2000], now
        return _row(row)


def review_list(engine: Engine) -> list[dict[str, Any]]:
    """The names no rule resolved, oldest first: their matches are followed without trading until resolved."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(VenuePlayer).where(VenuePlayer.status == UNRESOLVED).order_by(VenuePlayer.first_seen)
        ).all()
    return [dict(r._mapping) for r in rows]
