"""Turn replay-catalog matches into timed feed messages: match events point by point (through
the exact scoring state machine) and market messages (real closing odds before the match, the
simulated in-play market after each point)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from features.replays import replay_pbp_points
from features.scoring import Score, ScoringError, check_next, match_format
from feeds.live.market import LABELS, MarketModel, SimulatedMarket, closing_odds
from feeds.live.protocol import MarketUpdate, MatchEvent, PointInfo, SetGames
from feeds.live.server import Scheduled

log = logging.getLogger(__name__)

POINT_SECONDS = 30.0
"""Spacing of points when the source has no timing (ATP point-by-point sequences)."""
REOPEN_SECONDS = 2.0
"""The simulated market reopens this long after a point."""
PREMATCH_LEAD_SECONDS = 60.0
"""Default: the real closing odds are published this long (feed time) before the first point."""


@dataclass(frozen=True)
class ReplayMatch:
    """One catalog row, with its scores after every point."""

    row: dict
    scores: list[Score]
    times: list[float]


def scores_of(row: dict) -> tuple[list[Score], list[float]]:
    """Score after each point and its time (seconds from the match start); raises ScoringError."""
    scores, _, times = points_of(row)
    return scores, times


def points_of(row: dict) -> tuple[list[Score], list[int], list[float]]:
    """Score after each point, who won it (0/1) and its time (seconds from the match start); raises
    ScoringError."""
    fmt = match_format(str(row["tournament"]), int(row["season"]), int(row["best_of"]))
    if row["source"] == "pbp":
        try:
            scores, winners = replay_pbp_points(str(row["pbp"]), fmt, first_server=0)
        except ScoringError:
            if fmt.best_of == 5:
                raise
            # The sequence goes on after a best-of-3 would be over (Davis Cup, some linked matches
            # miss their format): it is a best-of-5 match.
            fmt = match_format(str(row["tournament"]), int(row["season"]), 5)
            scores, winners = replay_pbp_points(str(row["pbp"]), fmt, first_server=0)
        return scores, winners, [POINT_SECONDS * (i + 1) for i in range(len(scores))]
    score = Score.start(fmt, int(row["first_server"]) - 1)
    scores, winners = [], []
    for i, (winner, server) in enumerate(zip(row["point_winner"], row["point_server"], strict=True)):
        if score.server != int(server) - 1:
            raise ScoringError(f"point {i + 1}: log says player {server} serves, the rules say {score.server + 1}")
        score = score.point(int(winner) - 1)
        scores.append(score)
        winners.append(int(winner) - 1)
    times = [float(t) for t in row["elapsed_s"]]
    return scores, winners, [max(t, POINT_SECONDS * 0.1 * (i + 1)) if t <= 0 else t for i, t in enumerate(times)]


def match_event(row: dict, score: Score, kind: str, point: PointInfo | None, elapsed: float) -> MatchEvent:
    """The feed's message about the row's match at ``score`` (``kind``: match_start, point, match_end)."""
    d = score.display()
    status = d.event_status
    winner = d.event_winner
    if kind == "match_end" and score.winner is None:  # stopped early: retirement
        status = "Retired"
        won = _int(row.get("winner"))
        winner = LABELS[won - 1] if won is not None and won in (1, 2) else None
    return MatchEvent(
        kind=kind,
        event_key=str(row["event_key"]),
        event_date=str(row["event_date"]),
        event_first_player=str(row["player1"]),
        first_player_key=_int(row.get("player1_id")),
        event_second_player=str(row["player2"]),
        second_player_key=_int(row.get("player2_id")),
        event_final_result=d.event_final_result,
        event_game_result=d.event_game_result,
        event_serve=d.event_serve,
        event_winner=winner,
        event_status=status,
        tournament_name=str(row["tournament"]),
        tournament_round=_str(row.get("round")),
        tournament_season=str(row["season"]),
        best_of=score.fmt.best_of,  # the format the points were replayed in (scores_of may correct the row)
        surface=_str(row.get("surface")),
        event_live="0" if kind == "match_end" else "1",
        scores=[SetGames(score_first=a, score_second=b, score_set=n) for a, b, n in d.scores],
        pointbypoint=[point] if point else [],
        elapsed_s=elapsed,
    )


def _int(v) -> int | None:
    return None if v is None or pd.isna(v) else int(v)


def _str(v) -> str | None:
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)


def closing_message(row: dict) -> MarketUpdate | None:
    """The row's real pre-match closing odds as the feed's market message (None: the row has none)."""
    if pd.notna(row.get("close_p1")) and pd.notna(row.get("close_p2")):
        return closing_odds(
            str(row["event_key"]), float(row["close_p1"]), float(row["close_p2"]), str(row["close_source"])
        )
    return None


def match_messages(
    row: dict,
    start_at: float,
    market: MarketModel | None = None,
    prematch_lead_s: float = PREMATCH_LEAD_SECONDS,
    scored: tuple[list[Score], list[float]] | None = None,
) -> list[Scheduled]:
    """Every message of one match, timed from ``start_at`` (seconds on the feed's clock). The
    pre-match market (real closing odds) opens ``prematch_lead_s`` before the first point and
    closes when play starts: pre-match orders still unmatched then lapse. ``scored``: the row's
    ``scores_of`` when the caller has it already."""
    scores, times = scored if scored is not None else scores_of(row)
    fmt_start = Score.start(scores[0].fmt, int(row["first_server"]) - 1 if row["source"] == "slam" else 0)
    out: list[Scheduled] = []
    pre = closing_message(row)
    if pre is not None:
        out.append(Scheduled(start_at - prematch_lead_s, "market", pre))
        out.append(Scheduled(start_at - 0.002, "market", pre.model_copy(update={"status": "CLOSED"})))
    sim = SimulatedMarket(str(row["event_key"]), float(row["prematch_p1"]), fmt_start, market)
    out.append(Scheduled(start_at, "match", match_event(row, fmt_start, "match_start", None, 0.0)))
    out.append(Scheduled(start_at, "market", sim.opening()))
    prev = fmt_start
    for n, (score, t) in enumerate(zip(scores, times, strict=True), start=1):
        set_no = len(prev.sets) + 1
        info = PointInfo(
            set_number=set_no,
            game_number=sum(prev.games) + 1,
            point_number=n,
            winner=LABELS[check_next(prev, score)],
            server=LABELS[prev.server],
            break_point=prev.is_break_point,
            set_point=prev.is_set_point,
            match_point=prev.is_match_point,
        )
        at = start_at + t
        out.append(Scheduled(at - 0.001, "market", sim.suspend(n)))
        out.append(Scheduled(at, "match", match_event(row, score, "point", info, t)))
        out.append(Scheduled(at + REOPEN_SECONDS, "market", sim.after_point(score, n)))
        prev = score
    out.append(
        Scheduled(start_at + times[-1] + 0.01, "match", match_event(row, scores[-1], "match_end", None, times[-1]))
    )
    return out


def build_feed(
    rows: Iterable[dict],
    stagger_s: float = 600.0,
    market: MarketModel | None = None,
    prematch_lead_s: float = PREMATCH_LEAD_SECONDS,
) -> tuple[list[Scheduled], list[tuple[str, str]]]:
    """Messages of many matches on one clock, match k starting at k * ``stagger_s``; matches whose
    point data the scoring rules reject are left out with the reason."""
    schedule: list[Scheduled] = []
    skipped: list[tuple[str, str]] = []
    k = 0
    for row in rows:
        try:
            schedule.extend(match_messages(row, prematch_lead_s + k * stagger_s, market, prematch_lead_s))
            k += 1
        except (ScoringError, ValueError, TypeError) as exc:
            skipped.append((str(row.get("event_key")), f"{type(exc).__name__}: {exc}"))
    schedule.sort(key=lambda s: s.at)
    return schedule, skipped
