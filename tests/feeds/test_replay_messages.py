"""The feed's messages of a replayed match follow the format its points were replayed in."""

from __future__ import annotations

from feeds.live.protocol import MatchEvent
from feeds.live.replay import match_messages, scores_of

A_WINS_A_SET = "SSSS;RRRR;SSSS;RRRR;SSSS;RRRR"  # six games to love (A serves the first game of each set)


def _row(pbp: str, best_of: int) -> dict:
    return {
        "source": "pbp",
        "event_key": "pbp-test-1",
        "event_date": "2012-04-06",
        "tournament": "DavisCup",
        "season": 2012,
        "round": "RR",
        "surface": "Clay",
        "best_of": best_of,
        "player1": "Player One",
        "player2": "Player Two",
        "player1_id": None,
        "player2_id": None,
        "first_server": 1,
        "winner": 1,
        "prematch_p1": 0.6,
        "close_p1": None,
        "close_p2": None,
        "pbp": pbp,
    }


def test_a_row_that_says_best_of_3_but_plays_three_sets_to_love_is_replayed_and_sent_as_best_of_5():
    # 3-0 in sets: over after two sets in a best-of-3, so the replay reads it as best-of-5 (Davis Cup rows
    # of the point-by-point archive miss their format); the messages must say so, or the feed's own
    # protocol refuses them ("final result 3 - 0 is impossible ... best-of-3") and a backtest of every
    # match stopped there
    row = _row(".".join([A_WINS_A_SET] * 3), best_of=3)
    scores, _ = scores_of(row)
    assert scores[-1].fmt.best_of == 5 and scores[-1].winner == 0
    events = [m.payload for m in match_messages(row, 0.0) if isinstance(m.payload, MatchEvent)]
    assert events and {e.best_of for e in events} == {5}
    assert events[-1].kind == "match_end" and events[-1].event_final_result == "3 - 0"
