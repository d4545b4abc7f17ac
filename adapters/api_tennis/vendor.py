"""API-Tennis's snapshots of a real match, built from its points (for the local stand-in and the tests).

``snapshots(match, scores, winners)`` gives the vendor's record of the match before its first point and
after each point, as the live push sends it: the sets (``event_final_result``, ``scores`` with the current
set last), the current game (``event_game_result``: "30 - 15", "A - 40", tie-break counts), the server,
the status ("Set 2", "Finished", "Retired") and ``pointbypoint`` — every game so far with its server, winner
(``serve_winner``), games after it (``score``) and its points' calls, leaving out the point that won the
game, as the vendor does. Numbers are strings where the vendor sends strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from features.scoring import PLAYER_LABELS, Score


@dataclass(frozen=True)
class VendorMatch:
    """What API-Tennis says of a match besides its score."""

    event_key: int
    event_date: str
    event_first_player: str
    first_player_key: int
    event_second_player: str
    second_player_key: int
    event_type_type: str
    tournament_name: str
    tournament_key: int
    tournament_season: str
    tournament_round: str | None = None
    event_time: str = "12:00"


def vendor_name(full: str) -> str:
    """API-Tennis's short form of a player's name: "Novak Djokovic" -> "N. Djokovic"."""
    parts = full.split()
    return full if len(parts) < 2 else f"{parts[0][0]}. {' '.join(parts[1:])}"


def _points_call(score: Score) -> str:
    return score.game_result()


def snapshots(match: VendorMatch, start: Score, scores: list[Score], retired_by: int | None = None) -> list[dict]:
    """The vendor's snapshot before the first point and after each of ``scores`` (``start``: the score before
    the first point). ``retired_by``: the player (0/1) who retired after the last point (the match not over)."""
    games: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    out = [_snapshot(match, start, [], None)]
    prev = start
    for n, score in enumerate(scores):
        if current is None:
            current = {
                "set_number": f"Set {len(prev.sets) + 1}",
                "number_game": str(prev.games[0] + prev.games[1] + 1),
                "player_served": PLAYER_LABELS[prev.game_server],
                "serve_winner": None,
                "serve_lost": None,
                "score": "",
                "points": [],
            }
        game_over = len(score.sets) != len(prev.sets) or score.games != prev.games or score.winner is not None
        if game_over:
            won = 0 if _games_won(score, prev)[0] else 1
            after = score.sets[-1].games if len(score.sets) != len(prev.sets) else score.games
            current["serve_winner"] = PLAYER_LABELS[won]
            current["serve_lost"] = PLAYER_LABELS[prev.game_server] if won != prev.game_server else None
            current["score"] = f"{after[0]} - {after[1]}"
            games.append(current)
            current = None
        else:
            current["points"].append(
                {
                    "number_point": str(len(current["points"]) + 1),
                    "score": _points_call(score),
                    "break_point": None,
                    "set_point": None,
                    "match_point": None,
                }
            )
        last = n == len(scores) - 1
        status = None
        if score.winner is not None:
            status = "Finished"
        elif last and retired_by is not None:
            status = "Retired"
        out.append(_snapshot(match, score, games + ([current] if current else []), status, retired_by))
        prev = score
    return out


def _games_won(after: Score, before: Score) -> tuple[bool, bool]:
    """Which player's game (or set) count went up between two scores."""
    if len(after.sets) != len(before.sets) or after.winner is not None:
        last = after.sets[-1].games
        return last[0] > last[1], last[1] > last[0]
    return after.games[0] > before.games[0], after.games[1] > before.games[1]


def _snapshot(
    match: VendorMatch, score: Score, games: list[dict], status: str | None, retired_by: int | None = None
) -> dict:
    d = score.display()
    rows = list(d.scores)
    winner = d.event_winner
    final = d.event_final_result
    if status == "Retired" and retired_by is not None:
        winner = PLAYER_LABELS[1 - retired_by]
    return {
        "event_key": match.event_key,
        "event_date": match.event_date,
        "event_time": match.event_time,
        "event_first_player": match.event_first_player,
        "first_player_key": match.first_player_key,
        "event_second_player": match.event_second_player,
        "second_player_key": match.second_player_key,
        "event_final_result": final,
        "event_game_result": "-" if status else d.event_game_result,
        "event_serve": None if status else d.event_serve,
        "event_winner": winner,
        "event_status": status or d.event_status,
        "event_type_type": match.event_type_type,
        "tournament_name": match.tournament_name,
        "tournament_key": match.tournament_key,
        "tournament_round": match.tournament_round,
        "tournament_season": match.tournament_season,
        "event_live": "0" if status else "1",
        "event_qualification": "False",
        "scores": [{"score_first": str(a), "score_second": str(b), "score_set": str(k)} for a, b, k in rows],
        "pointbypoint": [dict(g, points=list(g["points"])) for g in games],
        "statistics": [],
    }
