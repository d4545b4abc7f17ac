"""Forced disconnects: every connection between the engine (its own process, deterministic mode) and the
feed is cut through a TCP proxy again and again during a replay of real matches. No feed event may be
lost or handled twice, and the orders must be exactly those of an undisturbed run of the same feed."""

from __future__ import annotations

import time

from tests.chaos.harness import (
    EngineProcess,
    FeedServer,
    Loop,
    TcpProxy,
    cursors,
    engine,
    events,
    full,
    new_database,
    orders,
    quarantined,
    real_frames,
    wait_until,
)


def _replay(tmp_path, name, frames, prediction_service, *, rate, cuts=0):
    loop = Loop()
    feed = FeedServer(loop, frames, rate=rate)
    proxy = TcpProxy(loop, feed.port)
    home = tmp_path / name
    home.mkdir()
    url = new_database(home, "live.db")
    proc = EngineProcess(url, proxy.url, prediction_service, home)
    db = engine(url)
    totals = feed.counts()
    try:
        proc.start()
        both = lambda: proxy.live >= 2  # noqa: E731  (the match and the market channel are connected)
        wait_until("the engine to connect", both, timeout=120, alive=proc.alive, log=proc.log_tail)
        start = time.monotonic()
        feed.start_publishing()
        expected_s = len(frames) / rate
        for k in range(cuts):  # spread over the publishing time, each after the engine reconnected
            target = start + expected_s * (k + 1) / (cuts + 1)
            while time.monotonic() < target:
                time.sleep(0.01)
            proxy.cut()
            wait_until(
                "the engine to reconnect both channels",
                both,
                timeout=60,
                alive=proc.alive,
                log=proc.log_tail,
                every=0.01,
            )
        wait_until(
            "the engine to handle every frame",
            lambda: cursors(db) == totals,
            timeout=600,
            alive=proc.alive,
            log=proc.log_tail,
        )
        seconds = time.monotonic() - start
    finally:
        proc.stop()
        proxy.stop()
        feed.stop()
        loop.close()
    return db, proxy, seconds


def test_cut_connections_lose_nothing_and_change_no_order(tmp_path, prediction_service, figures):
    matches, cuts = (4, 100) if full() else (2, 20)
    frames = real_frames(matches)
    rate = 300 if full() else 400  # slow enough that the cuts fall during the replay
    calm, _, calm_s = _replay(tmp_path, "calm", frames, prediction_service, rate=4000)
    cut, proxy, cut_s = _replay(tmp_path, "cut", frames, prediction_service, rate=rate, cuts=cuts)

    assert proxy.cuts == cuts and proxy.connections >= 2 * (cuts + 1)
    for db in (calm, cut):
        seqs = [s for _, _, s, _, _ in events(db, "FEED_MESSAGE")] + [
            s for _, _, s, _, _ in events(db, "MATCH_FINISHED")
        ]
        assert len(seqs) == len(set(seqs)) == sum(1 for f in frames if f.channel == "match"), "lost or twice"
        market = [s for _, _, s, _, _ in events(db, "MARKET_UPDATE") + events(db, "MARKET_SUSPENDED")]
        assert len(market) == len(set(market)) == sum(1 for f in frames if f.channel == "market")
        assert not quarantined(db)
    calm_orders, cut_orders = orders(calm), orders(cut)
    assert calm_orders, "the replay placed no order: nothing was compared"
    assert cut_orders == calm_orders  # byte for byte

    figures.update(
        {
            "matches replayed": matches,
            "frames": len(frames),
            "forced disconnects (both directions cut)": proxy.cuts,
            "connections made by the engine": proxy.connections,
            "feed events lost / handled twice": "0 / 0",
            "orders, undisturbed run": len(calm_orders),
            "orders equal to the undisturbed run (byte for byte)": "yes",
            "seconds, undisturbed / with cuts": f"{calm_s:.1f} / {cut_s:.1f}",
        }
    )
