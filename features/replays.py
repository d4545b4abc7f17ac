"""Replays of recorded point-by-point data through the scoring rules (``features.scoring``): Sackmann's
``pbp`` strings and the Grand Slam point logs, each turned into the score after every point, with the
record's own marks (game and set ends, logged games and points) checked against the rules.

The in-play training data, the replay catalog of the simulated feed and the backtests read history
through these two functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from features.scoring import MatchFormat, Score, ScoringError, read_points

_SERVER_WINS = frozenset("SA")
_RETURNER_WINS = frozenset("RD")


def replay_pbp(pbp: str, fmt: MatchFormat, first_server: int = 0) -> list[Score]:
    """The score after every point of a Sackmann ``pbp`` string (``replay_pbp_points`` without the winners)."""
    return replay_pbp_points(pbp, fmt, first_server)[0]


def replay_pbp_points(pbp: str, fmt: MatchFormat, first_server: int = 0) -> tuple[list[Score], list[int]]:
    """The score after every point of a Sackmann ``pbp`` string and who won each point (0/1), checking the
    string's game and set marks.

    ``S``/``A``: the server wins the point; ``R``/``D``: the receiver does; ``;`` ends a game,
    ``.`` a set, ``/`` marks a change of server inside a tie-break. A string that stops before the
    end (a retirement) gives the states up to there. Raises ``ScoringError`` naming the position
    where the marks and the rules disagree.
    """
    score = Score.start(fmt, first_server)
    states: list[Score] = []
    winners: list[int] = []
    expect: str | None = None  # the mark the last point calls for: ";", "." or "/"
    closed = False  # whether a "." closed the match (the archive writes one after five-set matches)
    for position, char in enumerate(pbp):
        if char in _SERVER_WINS or char in _RETURNER_WINS:
            if score.winner is not None:
                raise ScoringError(f"position {position}: a point after the end of the match ({score.describe()})")
            if expect is not None:
                happened = {";": "ended a game", ".": "ended a set", "/": "changed the server"}[expect]
                raise ScoringError(
                    f"position {position}: the point before {happened} ({score.describe()}) "
                    f"but no {expect!r} follows it"
                )
            server = score.server
            winner = server if char in _SERVER_WINS else 1 - server
            after = score.point(winner)
            if len(after.sets) > len(score.sets):
                expect = "." if after.winner is None else None
            elif after.games != score.games:
                expect = ";"
            elif after.in_tiebreak and after.server != server:
                expect = "/"
            score = after
            states.append(score)
            winners.append(winner)
        elif char in ";./":
            if char == expect:
                expect = None
            elif char == "." and expect is None and score.winner is not None and not closed:
                closed = True
            else:
                wanted = {";": "the end of a game", ".": "the end of a set", "/": "a change of server"}[char]
                found = "no mark" if expect is None else repr(expect)
                raise ScoringError(
                    f"position {position}: {char!r} marks {wanted} but the score is {score.describe()} "
                    f"(expected {found})"
                )
        elif not char.isspace():
            raise ScoringError(f"position {position}: unknown point code {char!r}")
    return states, winners


def replay_slam_points(rows: Iterable[Mapping[str, Any]], fmt: MatchFormat) -> list[Score]:
    """The score after every point of one match of the Grand Slam point logs, checking the log.

    Each row needs ``PointWinner`` and ``PointServer`` (1 or 2), ``SetNo``, ``P1GamesWon``,
    ``P2GamesWon``, ``P1Score`` and ``P2Score`` (the score after the point; the games of a set just
    won stay on its last row). Placeholder rows (``PointWinner`` 0) are skipped. The first server
    is the first point's ``PointServer``. ``rows`` may be a DataFrame of one match. Raises
    ``ScoringError`` naming the point where the log and the rules disagree.
    """
    if hasattr(rows, "to_dict"):  # a pandas DataFrame iterates over its column names, not its rows
        rows = rows.to_dict("records")
    score: Score | None = None
    states: list[Score] = []
    for number, row in enumerate(rows):
        label = f"row {number} (point {row.get('PointNumber', '?')})"
        winner, server = _logged_player(row["PointWinner"]), _logged_player(row["PointServer"])
        if winner == -1 and score is None:
            continue  # the point-0 placeholder before the first point
        if winner is None or winner == -1:
            raise ScoringError(f"{label}: no point winner recorded (PointWinner {row['PointWinner']!r})")
        if server is None or server == -1:
            raise ScoringError(f"{label}: no server recorded (PointServer {row['PointServer']!r})")
        if score is None:
            score = Score.start(fmt, server)
        if server != score.server:
            raise ScoringError(f"{label}: the log has player {server + 1} serving at {score.describe()}")
        try:
            after = score.point(winner)
        except ScoringError as exc:
            raise ScoringError(f"{label}: {exc}") from None
        set_no = _logged_int(row["SetNo"])
        if len(after.sets) > len(score.sets) and set_no == len(after.sets):
            games = after.sets[-1].games  # the log keeps a set's number and final games on its last row
        elif set_no == after.set_number:
            games = after.games
        else:
            raise ScoringError(f"{label}: the log says set {set_no} at {after.describe()}")
        score = after
        states.append(score)
        logged_games = (_logged_int(row["P1GamesWon"]), _logged_int(row["P2GamesWon"]))
        if logged_games != games:
            raise ScoringError(f"{label}: the log has games {logged_games[0]}-{logged_games[1]} at {score.describe()}")
        logged = read_points((str(row["P1Score"]), str(row["P2Score"])), score.in_tiebreak)
        if logged != score.points:
            raise ScoringError(f"{label}: the log has points {row['P1Score']}-{row['P2Score']} at {score.describe()}")
    return states


def _logged_int(value: object) -> int | None:
    """An integer field of a log (a float like 2.0 too), or None when missing or not a number."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return int(number) if number == number and number == int(number) else None


def _logged_player(value: object) -> int | None:
    """Player 0 or 1 from a log's 1 or 2; -1 for 0 (no point); None when missing or anything else."""
    number = _logged_int(value)
    return number - 1 if number in (0, 1, 2) else None
