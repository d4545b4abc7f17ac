"""Small valid feed messages for the transport tests."""

from feeds.live.protocol import MatchEvent, SetGames


def point_event(i: int) -> MatchEvent:
    """A point of match ``m1`` (the game score cycles 0-0 .. 40-0; the transport does not judge scores)."""
    return MatchEvent(
        kind="point",
        event_key="m1",
        event_date="2012-06-25",
        event_first_player="A",
        event_second_player="B",
        event_final_result="0 - 0",
        event_game_result=f"{i % 4} - 0",
        event_serve="First Player",
        event_status="Set 1",
        tournament_name="Wimbledon",
        tournament_season="2012",
        best_of=5,
        scores=[SetGames(score_first=0, score_second=0, score_set=1)],
    )
