"""API-Tennis REST through its guards, against the local stand-in over real HTTP: the sliding-window quota refuses
a call over the plan before sending it; answers are cached; repeated failures (HTTP 500, timeouts) open the
circuit and calls are refused at once until it closes; a wrong key is a refusal, not an outage; pre-match odds
become the feed's market messages with their bookmaker."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from adapters.api_tennis.live import ApiTennisRefused, ApiTennisSettings
from adapters.api_tennis.rest import ApiTennisRest, ApiTennisUnavailable, QuotaExceeded, SlidingQuota, odds_updates
from adapters.api_tennis.standin import ApiTennisStandIn

ODDS = {
    "11997372": {
        "Home/Away": {
            "Home": {"bet365": "1.83", "Pinnacle": "1.87", "junk": "x"},
            "Away": {"bet365": "2.00", "Pinnacle": "2.04", "junk": "1.9"},
        }
    }
}


def _run(scenario, **standin_options):
    async def main():
        standin = ApiTennisStandIn([], odds=ODDS, **standin_options)
        port = await standin.start()
        try:
            async with aiohttp.ClientSession() as session:
                settings = ApiTennisSettings(
                    key="test-key", rest_url=f"http://127.0.0.1:{port}/tennis/", rest_timeout_s=0.5
                )
                return await scenario(standin, settings, session)
        finally:
            await standin.stop()

    return asyncio.run(main())


def test_answers_are_cached_and_the_quota_refuses_before_sending():
    now = [0.0]

    async def scenario(standin, settings, session):
        rest = ApiTennisRest(settings, session, SlidingQuota(((60.0, 2), (3600.0, 3)), clock=lambda: now[0]))
        first = await rest.odds()
        assert await rest.odds() == first and rest.counts["cache hits"] == 1  # no second call
        await rest.fixtures("2024-11-07", "2024-11-07")
        with pytest.raises(QuotaExceeded, match="the limit is 2"):
            await rest.odds("11997372")
        now[0] = 61.0  # the minute has passed, not the hour
        await rest.odds("11997372")
        now[0] = 122.0
        with pytest.raises(QuotaExceeded, match="the limit is 3"):
            await rest.live_odds()
        return standin.rest_calls, rest.counts

    calls, counts = _run(scenario)
    assert calls == 3 and counts["calls"] == 3 and counts["refused: quota"] == 2


def test_repeated_failures_open_the_circuit_and_it_closes_again():
    async def scenario(standin, settings, session):
        rest = ApiTennisRest(settings, session, breaker_threshold=3, breaker_ttl_s=0.3)
        for _ in range(3):
            with pytest.raises(ApiTennisUnavailable, match="HTTP 500"):
                await rest.odds()
        sent = standin.rest_calls
        with pytest.raises(ApiTennisUnavailable, match="circuit is open"):
            await rest.odds()
        assert standin.rest_calls == sent  # refused at once, nothing sent
        await asyncio.sleep(0.4)
        assert await rest.odds() == ODDS  # half-open: one call tried, it works, the circuit closes
        return rest.counts

    counts = _run(scenario, fail_next=3)
    assert counts["failures"] == 3 and counts["refused: circuit open"] == 1


def test_a_timeout_is_a_failure_and_a_wrong_key_a_refusal():
    async def scenario(standin, settings, session):
        rest = ApiTennisRest(settings, session, breaker_threshold=2, breaker_ttl_s=5)
        with pytest.raises(ApiTennisUnavailable, match="TimeoutError"):
            await rest.odds()
        standin.slow_s = 0.0
        wrong = ApiTennisRest(ApiTennisSettings(key="wrong", rest_url=settings.rest_url), session, breaker_threshold=1)
        for _ in range(2):  # refused every time, and the circuit stays closed: it is not an outage
            with pytest.raises(ApiTennisRefused, match="Wrong login credentials"):
                await wrong.odds()
        return rest.counts

    counts = _run(scenario, slow_s=1.0)
    assert counts["failures"] == 1


def test_pre_match_odds_become_market_messages_with_their_bookmaker():
    updates = list(odds_updates(ODDS, {"11997372": "at-11997372"}.get))
    assert [u.source for u in updates] == ["api-tennis:Pinnacle", "api-tennis:bet365"]  # "junk" is not a price
    bet365 = updates[1]
    assert bet365.market_id == "odds-at-11997372" and not bet365.in_play and not bet365.simulated
    assert [r.back_price for r in bet365.runners] == [1.83, 2.0]
    assert list(odds_updates(ODDS, lambda _key: None)) == []  # a match not followed
