"""Which live feed ``make up`` starts: the replay by default; API-Tennis's scores, with Betfair's prices for paper
trading on live prices; or both local stand-ins. Real orders cannot be asked for: they are not built."""

from __future__ import annotations

import pytest

from courtside.cli import feed_service


def test_the_replay_is_the_default_and_binds_where_it_is_told():
    spec = feed_service("127.0.0.1", 8765, {})
    assert spec.name == "feed-replay" and spec.command[1:3] == ("-m", "feeds.live")
    assert spec.command[spec.command.index("--host") + 1] == "127.0.0.1"


def test_api_tennis_scores_with_or_without_betfair_prices():
    scores = feed_service("127.0.0.1", 8765, {"COURTSIDE_FEED": "api-tennis"})
    assert scores.command[1:3] == ("-m", "adapters") and "--prices" not in scores.command
    live = feed_service("127.0.0.1", 8765, {"COURTSIDE_FEED": "api-tennis", "COURTSIDE_VENUE": "betfair-paper-live"})
    assert live.command[-2:] == ("--prices", "betfair")
    standin = feed_service("127.0.0.1", 9000, {"COURTSIDE_FEED": "standin", "COURTSIDE_STANDIN_MATCHES": "2"})
    assert standin.command[-2:] == ("--standin", "2") and "9000" in standin.command


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"COURTSIDE_VENUE": "live"}, "real orders are not built"),
        ({"COURTSIDE_VENUE": "betfair-paper-live"}, "needs live scores"),
        ({"COURTSIDE_FEED": "twitter"}, "one of replay"),
    ],
)
def test_a_setting_that_cannot_be_met_stops_with_why(env, says):
    with pytest.raises(SystemExit, match=says):
        feed_service("127.0.0.1", 8765, env)
