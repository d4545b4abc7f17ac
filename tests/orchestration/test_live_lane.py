"""The live lane end to end on the pipeline's real state (Postgres application database): the
prediction service started with ``bentoml serve`` answers from the registered champion; the engine
trades real Grand Slam matches; the streaming sensor tails the event log and requests the runs that
scan pre-match odds (``/predict`` in batch), settle finished matches, update the P&L and validate the
live batches with Great Expectations."""

import asyncio
import dataclasses
import json
import urllib.error
import urllib.request

import dagster as dg
import pandas as pd
import pytest

from betting.policy import TradingPolicy
from betting.records import EventKind
from feeds.live.catalog import choose
from feeds.live.replay import build_feed
from orchestration.definitions import build_definitions
from orchestration.defs.operations.sensors import live_event_log
from serving.api.lineage import bet_lineage
from serving.engine.engine import EngineConfig, TradingEngine
from serving.engine.prediction import PredictionClient
from storage import live as store
from storage.db import make_engine
from tests.engine.fixtures import envelopes_of
from tests.services import prediction_service

MATCHES = 6


def _post(url: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def service(runs):
    settings, _, first, _ = runs
    assert first.success
    env = {
        "COURTSIDE_DATA_DIR": settings.data_dir,
        "COURTSIDE_DATABASE_URL": settings.database_url,
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
    }
    with prediction_service(settings.home, env, ready=True) as url:
        yield url


@pytest.mark.slow
@pytest.mark.postgres
def test_predict_answers_from_the_champion_and_names_bad_fields(runs, service):
    settings = runs[0]
    ok, body = _post(
        f"{service}/predict",
        {
            "requests": [
                {
                    "player_one": "Novak Djokovic",
                    "player_two": "Rafael Nadal",
                    "surface": "Clay",
                    "date": "2022-05-30",
                    "best_of": 5,
                    "level": "G",
                    "round": "QF",
                },
                {
                    "player_one": 104745,
                    "player_two": 104925,
                    "surface": "Clay",
                    "date": "2022-05-30",
                    "best_of": 5,
                    "level": "G",
                    "round": "QF",
                },
            ]
        },
    )
    assert ok == 200, body
    a, b = body["predictions"]
    assert (a["player_one_id"], a["player_two_id"]) == (104925, 104745)
    assert 0 < a["probability"] < 1 and a["model_name"] == "tennis-prematch" and a["model_version"]
    assert abs(a["probability"] + b["probability"] - 1) < 1e-6  # same match, seen from each side: one price

    code, body = _post(
        f"{service}/predict",
        {
            "requests": [
                {"player_one": "Nobody Atall", "player_two": "Rafael Nadal", "surface": "Clay", "date": "2022-05-30"}
            ]
        },
    )
    assert code == 422 and body["detail"][0]["loc"][-1] == "player_one"
    code, body = _post(
        f"{service}/predict",
        {"requests": [{"player_one": 104925, "player_two": 104745, "surface": "Clay", "date": "2014-06-01"}]},
    )
    assert code == 422 and body["detail"][0]["loc"][-1] == "date"

    # a trader's questions: stale features say so, too stale is refused, a misspelled name gets the closest players
    assert a["features_age_days"] > 30 and "stale features" in a["warnings"][0]
    req = urllib.request.Request(
        f"{service}/predict",
        data=json.dumps(
            {"requests": [{"player_one": 104925, "player_two": 104745, "surface": "Clay", "date": "2022-05-30"}]}
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert "stale features in 1 of 1" in resp.headers["X-Courtside-Warning"]
    far = {"player_one": 104925, "player_two": 104745, "surface": "Clay", "date": "2090-05-30"}
    code, body = _post(f"{service}/predict", {"requests": [far]})
    assert code == 422 and body["detail"][0]["loc"][-1] == "date" and "beyond the limit" in body["detail"][0]["msg"]
    code, body = _post(f"{service}/predict", {"requests": [{**far, "date": "2022-05-30", "player_one": "Djokovic N."}]})
    assert code == 422 and "did you mean Novak Djokovic (104925)" in body["detail"][0]["msg"]

    catalog = pd.read_parquet(settings.warehouse_dir / "replay_catalog.parquet")
    row = choose(catalog, "slam", 1).iloc[0]
    ask = {
        "player_one": int(row["player1_id"]),
        "player_two": int(row["player2_id"]),
        "surface": row["surface"],
        "date": row["event_date"],
        "best_of": 5,
        "level": "G",
        "match_id": row["sackmann_match_id"],
    }
    code, body = _post(
        f"{service}/predict",
        {"requests": [ask, {**ask, "player_one": ask["player_two"], "player_two": ask["player_one"]}]},
    )
    assert code == 200, body
    one, other = body["predictions"]
    assert abs(one["probability"] + other["probability"] - 1) < 1e-9  # the same as-of feature row
    code, body = _post(f"{service}/predict", {"requests": [{**ask, "player_two": 104925}]})
    assert code == 422 and body["detail"][0]["loc"][-1] == "match_id"


@pytest.mark.slow
@pytest.mark.postgres
def test_predict_answers_wta_questions_from_the_wta_champion_in_the_same_batch(runs, service):
    settings = runs[0]
    women = {
        "player_one": "Iga Swiatek",
        "player_two": "Ashleigh Barty",
        "tour": "WTA",
        "surface": "Clay",
        "date": "2022-05-30",
        "level": "PM",
        "round": "QF",
    }
    men = {"player_one": "Novak Djokovic", "player_two": "Rafael Nadal", "surface": "Clay", "date": "2022-05-30"}
    swapped = {**women, "player_one": women["player_two"], "player_two": women["player_one"]}
    code, body = _post(f"{service}/predict", {"requests": [women, men, swapped]})
    assert code == 200, body
    w, m, ws = body["predictions"]
    assert w["model_name"] == "tennis-prematch-wta" and w["tour"] == "WTA" and m["model_name"] == "tennis-prematch"
    assert 0 < w["probability"] < 1 and abs(w["probability"] + ws["probability"] - 1) < 1e-6
    assert w["player_one_id"] != m["player_one_id"]

    # a man asked as a WTA player is unknown there; a WTA level on an ATP question is refused
    code, body = _post(f"{service}/predict", {"requests": [{**women, "player_one": "Novak Djokovic"}]})
    assert code == 422 and body["detail"][0]["loc"][-1] == "player_one" and "WTA" in body["detail"][0]["msg"]
    code, body = _post(f"{service}/predict", {"requests": [{**men, "level": "PM"}]})
    assert code == 422

    # a historical women's match answers from its as-of row of the WTA feature table
    table = pd.read_parquet(settings.warehouse_dir / "wta_prematch_features.parquet")
    row = table[table["season"] == 2019].iloc[0]
    ask = {
        "player_one": int(row["player_a_id"]),
        "player_two": int(row["player_b_id"]),
        "tour": "WTA",
        "surface": row["surface"],
        "date": str(pd.Timestamp(row["tourney_date"]).date()),
        "match_id": row["match_id"],
    }
    code, body = _post(f"{service}/predict", {"requests": [ask]})
    assert code == 200, body
    health = json.loads(urllib.request.urlopen(f"{service}/health", timeout=10).read())
    assert health["wta_model_name"] == "tennis-prematch-wta" and health["wta_model_version"] == "1"

    # in play, best of three: the prior from the WTA champion, then the score
    state = {"best_of": 3, "tournament": "Roland Garros", "season": 2022, "server": 1, "prematch": women}
    code, body = _post(
        f"{service}/predict_live",
        {"states": [{**state, "sets": [[6, 1]], "games": [5, 0]}, {**state, "sets": [[1, 6]], "games": [0, 5]}]},
    )
    assert code == 200, body
    ahead, behind = (p["probability"] for p in body["predictions"])
    assert 0.9 < ahead < 1 and 0 < behind < 0.1  # a set and 5-0 up in a best of three is nearly won


def _run_requests(defs, instance, result) -> dict[str, dg.ExecuteInProcessResult]:
    out = {}
    for request in result.run_requests:
        job = defs.resolve_job_def(request.job_name)
        out[request.job_name] = job.execute_in_process(
            instance=instance, run_config=request.run_config, raise_on_error=False
        )
    return out


@pytest.mark.slow
@pytest.mark.postgres
def test_sensor_drives_prematch_bets_settlement_pnl_and_live_checks(runs, service):
    settings = dataclasses.replace(runs[0], prediction_url=service)
    defs = build_definitions(settings)
    resource = defs.resources["courtside"]
    db = make_engine(settings.database_url)
    store.reset_live(db)
    catalog = pd.read_parquet(settings.warehouse_dir / "replay_catalog.parquet")
    women = pd.read_parquet(settings.warehouse_dir / "wta_replay_catalog.parquet")
    chosen = pd.concat([choose(catalog, "slam", MATCHES - 2), choose(women, "slam", 2)], ignore_index=True)
    assert chosen["tour"].tolist().count("WTA") == 2 and set(chosen.loc[chosen["tour"] == "WTA", "best_of"]) == {3}
    schedule, skipped = build_feed(chosen.to_dict("records"), stagger_s=0, prematch_lead_s=600)
    assert not skipped
    envelopes = envelopes_of(schedule)
    first_point = next(i for i, e in enumerate(envelopes) if e.channel == "match" or e.data.status == "CLOSED")

    async def session(instance):
        async with PredictionClient(service, timeout_s=5) as client:
            config = EngineConfig(policy=TradingPolicy(bankroll=settings.bankroll))
            engine = TradingEngine(config, db, client.predict_live)
            await engine.process([(0.0, e) for e in envelopes[:first_point]])  # pre-match odds only
            await engine.commit(wait=True)

            tick = live_event_log(dg.build_sensor_context(instance=instance, resources={"courtside": resource}))
            assert [r.job_name for r in tick.run_requests] == ["prematch_value"]
            runs_ = _run_requests(defs, instance, tick)
            assert runs_["prematch_value"].success
            meta = runs_["prematch_value"].asset_materializations_for_node("prematch_value_scan")[0].metadata
            assert meta["new_markets"].value == MATCHES and meta["predicted"].value == MATCHES
            queued = store.new_order_requests(db)
            assert len(queued) == meta["order_requests"].value
            # scheduled matches are named (the catalog's players) before their first point; every request traces
            # back to the opportunity that asked for it (its lineage: GET /bets/{ref})
            by_key = chosen.set_index("event_key")
            named = {m: p["players"] for *_, m, p in store.events_after(db, 0, kinds=["PREMATCH_PREDICTION"])}
            assert len(named) == MATCHES
            assert all(v == [by_key.loc[m, "player1"], by_key.loc[m, "player2"]] for m, v in named.items())
            asked = {
                p["ref"]
                for *_, p in store.events_after(db, 0, kinds=[str(EventKind.OPPORTUNITY)])
                if p.get("source") == "prematch"
            }
            assert queued and {ref for ref, *_ in queued} <= asked

            await engine.housekeeping()  # the engine risk-checks and places what the control plane queued
            await engine.commit(wait=True)
            assert not store.new_order_requests(db)
            again = live_event_log(
                dg.build_sensor_context(instance=instance, cursor=tick.cursor, resources={"courtside": resource})
            )
            assert not again.run_requests  # nothing new: no second scan of the same odds

            for i in range(first_point, len(envelopes), 50):
                await engine.process([(0.0, e) for e in envelopes[i : i + 50]])
            await engine.commit(wait=True)
            return engine, queued, again.cursor

    with dg.DagsterInstance.ephemeral() as instance:
        engine, queued, cursor = asyncio.run(session(instance))
        placed = {o["customer_order_ref"]: src for _, src, o in store.order_rows(db)}
        for ref, _, request in queued:
            assert request["edge"] >= EngineConfig().policy.value.min_edge
            rejected = [
                p
                for *_, p in store.events_after(db, 0, kinds=[str(EventKind.ORDER_REJECTED)])
                if p["request"]["customer_order_ref"] == ref
            ]
            assert placed.get(ref) == "prematch" or rejected, ref  # placed, or refused with a logged reason
        assert sum(1 for s in placed.values() if s == "inplay") > 0
        # a pre-match bet's lineage: the pre-match odds entry the scan read, the champion's answer, its fate
        ref = queued[0][0]
        chain = bet_lineage(store.lineage_rows(db, ref), ref, None)
        assert chain is not None and chain["source"] == "prematch" and chain["trigger"]["kind"] == "MARKET_UPDATE"
        assert chain["trigger"]["message"]["in_play"] is False and chain["prediction"]["model"]
        assert chain["fate"]["status"] in ("placed", "matched", "lapsed", "cancelled", "settled", "rejected")
        assert chain["risk_checks"] and chain["decision"]["stake_rule"]["rule"] == "fractional Kelly"

        tick = live_event_log(
            dg.build_sensor_context(instance=instance, cursor=cursor, resources={"courtside": resource})
        )
        assert {r.job_name for r in tick.run_requests} == {"settle_live", "live_data_checks"}
        runs_ = _run_requests(defs, instance, tick)
        assert runs_["settle_live"].success and runs_["live_data_checks"].success
        checks = runs_["live_data_checks"].get_asset_check_evaluations()
        assert [c.check_name for c in checks] == ["gx_live_events"] and checks[0].passed

        settled = store.settlements(db)
        finished = store.events_after(db, 0, kinds=[str(EventKind.MATCH_FINISHED)])
        assert len(finished) == MATCHES
        women_keys = set(chosen.loc[chosen["tour"] == "WTA", "event_key"])
        assert women_keys <= {match_id for *_, match_id, _ in finished}  # the women's matches played to the end
        markets = {m for *_, p in finished for m in p["markets"]}
        assert {s["market_id"] for s in settled} == markets and len(settled) == len(markets)
        assert store.orders(db) and not store.orders(db, unsettled_only=True)  # every order settled with its market
        pnl = runs_["settle_live"].asset_materializations_for_node("live_pnl")[0].metadata
        net = round(sum(s["pnl"]["net_profit"] for s in settled), 2)
        assert pnl["net_profit"].value == pytest.approx(net)
        assert pnl["bankroll"].value == pytest.approx(settings.bankroll + net)
        assert "bankroll_chart" in pnl and "calibration_chart" in pnl

        # settling again changes nothing: each market is settled exactly once
        rerun = defs.resolve_job_def("settle_live").execute_in_process(instance=instance)
        assert rerun.asset_materializations_for_node("live_settlements")[0].metadata["settled_now"].value == 0
        assert len(store.settlements(db)) == len(settled)
