"""The feed protocol refuses, with the field named, every message whose form cannot be right: times that
are not finite or plausible, seasons that are not years, game results tennis does not have, sizes and
prices off the exchange's bounds, market ids that do not name their match (issue 9's defects)."""

import json
import re

import pytest
from pydantic import ValidationError

from feeds.live.protocol import Envelope, MarketUpdate, MatchEvent, RunnerPrices, SetGames, market_event_key, parse


def _event(**changes) -> dict:
    event = MatchEvent(
        kind="point",
        event_key="2012-wimbledon-1101",
        event_date="2012-06-25",
        event_first_player="A. Player",
        event_second_player="B. Player",
        event_final_result="0 - 0",
        event_game_result="15 - 0",
        event_serve="First Player",
        event_status="Set 1",
        tournament_name="Wimbledon",
        tournament_season="2012",
        best_of=5,
        scores=[SetGames(score_first=0, score_second=0, score_set=1)],
    )
    return {**json.loads(event.model_dump_json()), **changes}


def _market(**runner_changes) -> dict:
    update = MarketUpdate(
        event_key="2012-wimbledon-1101",
        market_id="sim-2012-wimbledon-1101",
        status="OPEN",
        in_play=True,
        simulated=True,
        source="simulated",
        runners=[
            RunnerPrices(selection="First Player", back_price=1.5, back_size=10, lay_price=1.52, lay_size=10),
            RunnerPrices(selection="Second Player", back_price=2.9, back_size=10, lay_price=3.0, lay_size=10),
        ],
    )
    data = json.loads(update.model_dump_json())
    data["runners"][0].update(runner_changes)
    return data


def _frame(data: dict, event_time="1.0", channel="match") -> str:
    head = f'{{"type": "event", "feed": "live", "channel": "{channel}", "seq": 1, "event_time": {event_time}'
    return head + ', "data": ' + json.dumps(data) + "}"


def _refused(raw: str, field: str) -> str:
    with pytest.raises(ValidationError) as err:
        parse(raw)
    text = str(err.value)
    assert field in text, text
    return text


def test_a_valid_message_parses():
    env = parse(_frame(_event()))
    assert isinstance(env, Envelope) and env.data.event_game_result == "15 - 0"
    assert isinstance(parse(_frame(_market(), channel="market")).data, MarketUpdate)


@pytest.mark.parametrize("event_time", ["NaN", "Infinity", "-Infinity", "1e308", "1e400", "-1e12", "-0.5"])
def test_event_time_must_be_finite_and_plausible(event_time):
    _refused(_frame(_event(), event_time=event_time), "event_time")


@pytest.mark.parametrize("season", ["²", "２０１２", "12", "20120", "1066", "9999", " 2012"])
def test_season_must_be_a_plausible_year_in_ascii_digits(season):
    _refused(_frame(_event(tournament_season=season)), "tournament_season")


@pytest.mark.parametrize("game", ["A - A", "A - 15", "30 - A", "AD - AD", "1000 - 0", "40 40", "x - y", "-1 - 0"])
def test_game_results_tennis_does_not_have_are_refused(game):
    _refused(_frame(_event(event_game_result=game)), "event_game_result")


@pytest.mark.parametrize("game", ["0 - 0", "40 - 40", "A - 40", "40 - A", "6 - 5", "12 - 10", "-"])
def test_game_results_of_tennis_are_accepted(game):
    assert parse(_frame(_event(event_game_result=game))).data.event_game_result == game


def test_final_result_and_sets_must_be_possible():
    _refused(_frame(_event(event_final_result="3 - 3")), "final result")
    _refused(_frame(_event(event_final_result="2 - 0")), "final result")  # two sets won, one set played
    _refused(_frame(_event(scores=[{"score_first": 1, "score_second": 0, "score_set": 2}])), "number the sets")
    _refused(_frame(_event(event_second_player="A. Player")), "same name")


@pytest.mark.parametrize(
    "field,value",
    [
        ("back_size", "Infinity"),
        ("back_size", "1e400"),
        ("lay_size", "NaN"),
        ("traded_volume", "1e12"),
        ("back_size", "-1"),
        ("back_price", "1.511"),
        ("back_price", "1e308"),
        ("lay_price", "0.5"),
    ],
)
def test_sizes_and_prices_must_be_finite_on_the_ladder_and_bounded(field, value):
    raw = re.sub(rf'"{field}": [^,}}]+', f'"{field}": {value}', _frame(_market(), channel="market"), count=1)
    assert f'"{field}": {value}' in raw
    _refused(raw, field)


def test_crossed_prices_are_refused():
    _refused(_frame(_market(back_price=1.6, lay_price=1.5), channel="market"), "crossed")


@pytest.mark.parametrize(
    "market_id", ["", "five", "sim-other-match", "sim-", "-2012-wimbledon-1101", "s i m-2012-wimbledon-1101"]
)
def test_market_ids_must_name_their_match(market_id):
    data = _market()
    data["market_id"] = market_id
    _refused(_frame(data, channel="market"), "market")


def test_market_event_key_reads_the_match_of_a_market_id():
    assert market_event_key("sim-pbp-123") == "pbp-123"
    assert market_event_key("pre-2012-wimbledon-1101") == "2012-wimbledon-1101"
    assert market_event_key("five") is None and market_event_key("") is None


def test_huge_numbers_are_refused_not_overflowed():
    _refused(_frame(_event()).replace('"seq": 1', '"seq": 669406683781648508518400'), "seq")
    _refused(_frame(_event(first_player_key=10**30)), "first_player_key")


@pytest.mark.parametrize("field,value", [("seq", '"1"'), ("event_time", '"1.0"'), ("event_time", "true")])
def test_no_silent_coercion_of_the_envelope(field, value):
    raw = re.sub(rf'"{field}": [^,}}]+', f'"{field}": {value}', _frame(_event()), count=1)
    _refused(raw, field)


def test_no_silent_coercion_of_the_message():
    _refused(_frame(_event(best_of="5")), "best_of")
    _refused(_frame(_event(first_player_key="104745")), "first_player_key")
    _refused(_frame({**_market(), "in_play": 1}, channel="market"), "in_play")
