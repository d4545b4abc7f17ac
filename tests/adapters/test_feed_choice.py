"""Which live feed ``make up`` starts: the replay by default; API-Tennis's scores, with Betfair's prices for paper
trading on live prices (or for real orders, only with the explicit switch); or both local stand-ins."""

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
        ({"COURTSIDE_VENUE": "live"}, "one of paper"),
        ({"COURTSIDE_FEED": "api-tennis", "COURTSIDE_VENUE": "betfair-live"}, "REAL orders with real money"),
        ({"COURTSIDE_VENUE": "betfair-paper-live"}, "needs live scores"),
        ({"COURTSIDE_FEED": "twitter"}, "one of replay"),
    ],
)
def test_a_setting_that_cannot_be_met_stops_with_why(env, says):
    with pytest.raises(SystemExit, match=says):
        feed_service("127.0.0.1", 8765, env)


def test_real_orders_need_the_explicit_switch_and_then_feed_betfair_prices():
    env = {"COURTSIDE_FEED": "api-tennis", "COURTSIDE_VENUE": "betfair-live", "COURTSIDE_REAL_MONEY": "yes-real-orders"}
    assert feed_service("127.0.0.1", 8765, env).command[-2:] == ("--prices", "betfair")


def test_the_engine_refuses_real_orders_without_the_switch_or_the_credentials():
    from adapters.betfair.exchange import live_exchange_factory
    from adapters.betfair.prices import BetfairRefused

    with pytest.raises(SystemExit, match="REAL orders"):
        live_exchange_factory({}, list)
    with pytest.raises(BetfairRefused, match="BETFAIR_APP_KEY"):
        live_exchange_factory({"COURTSIDE_REAL_MONEY": "yes-real-orders"}, list)


def test_courtside_up_s_replay_options_reach_the_replay_and_the_last_given_wins():
    from courtside.cli import REPLAY_DEFAULT, with_replay_options

    options = with_replay_options(REPLAY_DEFAULT, 5, 4, "both")
    spec = feed_service("127.0.0.1", 8765, {"COURTSIDE_REPLAY_ARGS": options})
    args = spec.command[spec.command.index("--port") + 2 :]
    import argparse

    parsed = argparse.ArgumentParser()
    for flag, kind in (("--speed", float), ("--matches", int), ("--tour", str)):
        parsed.add_argument(flag, type=kind)
    got = parsed.parse_args(args)  # feeds.live parses the same way: a repeated option's last value wins
    assert (got.speed, got.matches, got.tour) == (5.0, 4, "both")
    assert with_replay_options(REPLAY_DEFAULT, None, None, None) == REPLAY_DEFAULT


def test_up_with_skip_pipeline_refuses_a_home_without_the_pipeline_s_state(tmp_path, monkeypatch, capsys):
    from courtside.cli import main

    monkeypatch.setenv("COURTSIDE_HOME", str(tmp_path / "home"))
    assert main(["up", "--skip-pipeline"]) == 2
    err = capsys.readouterr().err
    assert "--skip-pipeline: no pipeline state" in err and "replay_catalog.parquet" in err
    assert main(["up", "--speed", "0"]) == 2
