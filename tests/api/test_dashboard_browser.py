"""The dashboard in a real browser (headless Chromium) during a real replay: a feed server process
publishes real Wimbledon 2012 matches over WebSocket, the streaming engine follows it (its ``run``
loop, with predictions from a real ``bentoml serve``) and writes the event log, the API process serves
the page and pushes the updates. The page must show the live matches, and their scores and win
probability charts must move while we watch (the page has no REST polling of scores: they arrive over
the WebSocket). The screenshot is kept: ``.courtside/artifacts/dashboard.png`` (path printed).

Chromium missing is a failure, not a skip: CI installs Debian's ``chromium`` and ``chromium-driver``
(``.ci/run``)."""

from __future__ import annotations

import asyncio
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from serving.engine.engine import EngineConfig, TradingEngine
from serving.engine.prediction import PredictionClient
from storage.db import make_engine, migrate
from tests.api.services import api_server, feed_server
from tests.services import ROOT

ARTIFACT = ROOT / ".courtside" / "artifacts" / "dashboard.png"
READ_TOKEN = "dashboard-read-token-5e0c2b7a91"
"""What the page sends to subscribe to the gateway's ledger room (COURTSIDE_READ_TOKEN)."""


def _binaries() -> tuple[str, str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.fail(
            "headless Chromium is needed for the dashboard test: install Debian's chromium and "
            f"chromium-driver (apt-get install chromium chromium-driver); found browser={browser}, "
            f"driver={driver}",
            pytrace=False,
        )
    return browser, driver


class EngineThread(threading.Thread):
    """The engine's own ``run`` loop (feed client -> trading -> event log) in a thread of its own."""

    def __init__(self, database_url: str, feed_url: str, prediction_url: str):
        super().__init__(daemon=True)
        self.database_url, self.feed_url, self.prediction_url = database_url, feed_url, prediction_url
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.engine: TradingEngine | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc

    async def _main(self) -> None:
        self.stop_event = asyncio.Event()
        db = make_engine(self.database_url)
        async with PredictionClient(self.prediction_url, timeout_s=5) as client:
            self.engine = TradingEngine(EngineConfig(feed_url=self.feed_url), db, client.predict_live)
            await self.engine.run(self.stop_event)
        db.dispose()

    def stop(self) -> None:
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.join(timeout=30)


def _wait(what: str, check, timeout: float = 90.0, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def fresh(read, tries: int = 30):
    """``read()`` again when the page re-rendered the elements it was reading (a live page does)."""
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(tries):
        try:
            return read()
        except StaleElementReferenceException:
            time.sleep(0.1)
    return read()


def test_dashboard_shows_the_replay_live(tmp_path, prediction_service):
    browser_path, driver_path = _binaries()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    url = f"sqlite:///{tmp_path / 'live.db'}"
    migrate(url)
    with (
        feed_server(tmp_path, "2012-wimbledon", 3, rate=12) as feed_url,
        api_server(url, tmp_path, env={"COURTSIDE_READ_TOKEN": READ_TOKEN}) as api,
    ):
        engine = EngineThread(url, feed_url, prediction_service)
        engine.start()
        options = webdriver.ChromeOptions()
        options.binary_location = browser_path
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
            options.add_argument(arg)
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
        try:
            driver.get(f"{api.url}/dashboard/#token={READ_TOKEN}")  # the ledger room's token, never sent to a server

            def cards():
                return driver.find_elements(By.CSS_SELECTOR, '#matches .card[data-status="in_play"]')

            _wait("a live match on the page", cards)
            assert "connected" in driver.find_element(By.ID, "ws-status").text

            def read_snapshot() -> dict[str, tuple[str, int]]:
                out = {}
                for card in cards():
                    score = card.find_element(By.CSS_SELECTOR, "table.score").get_attribute("data-score")
                    points = int(card.find_element(By.CSS_SELECTOR, "svg.winprob").get_attribute("data-points"))
                    out[card.get_attribute("data-match-id")] = (score, points)
                return out

            def snapshot() -> dict[str, tuple[str, int]]:
                return fresh(read_snapshot)

            first = _wait("a score and a chart", lambda: {k: v for k, v in snapshot().items() if v[0] and v[1]})
            time.sleep(4)

            def moved():
                now = snapshot()
                return [
                    k for k, (score, points) in first.items() if k in now and now[k][0] != score and now[k][1] > points
                ]

            changed = _wait("scores and win-probability charts to move", moved, timeout=60)

            def read_card():
                card = driver.find_element(By.CSS_SELECTOR, f'.card[data-match-id="{changed[0]}"]')
                rows = [r.text.strip() for r in card.find_elements(By.CSS_SELECTOR, "table.score tr")]
                return (
                    rows,
                    card.find_element(By.CSS_SELECTOR, "svg.winprob polyline.model").get_attribute("points"),
                    card.find_element(By.CSS_SELECTOR, "svg.winprob polyline.market").get_attribute("points"),
                )

            rows, model_line, market_line = fresh(read_card)
            assert len(rows) == 2 and all(rows)  # two players with their games
            # the data quality of the match's messages (features.live_quality), with its four dimensions
            dq = driver.find_element(By.CSS_SELECTOR, f'.card[data-match-id="{changed[0]}"] .dq')
            assert re.fullmatch(r"data \d{1,3}%", dq.text), dq.text
            assert "completeness" in dq.get_attribute("title") and "timeliness" in dq.get_attribute("title")
            assert model_line and market_line
            _wait(
                "a value bet in the table",
                lambda: driver.find_elements(By.CSS_SELECTOR, "#value-bets tbody tr"),
                timeout=60,
            )
            for chip in ("model-status", "dq-status", "inplay-status", "engine-status", "fresh-status"):
                assert driver.find_element(By.ID, chip).text.split(":")[1].strip() not in ("", "?"), chip
            # how orders are filled and where the feed comes from, from the engine's heartbeat
            assert driver.find_element(By.ID, "mode-status").text == "PAPER · feed: replay"
            # matches in play: no "replay over" hint (it appears once every started match has finished)
            assert not driver.find_element(By.ID, "replay-over").is_displayed()
            review = driver.find_element(By.CSS_SELECTOR, "#identity-review tbody").text
            assert review == "every name is identified"  # the replay's players are known
            # nothing runs the control plane here: the data quality is unknown, and the page says why
            assert driver.find_element(By.ID, "dq-status").text == "data quality: unknown"
            assert "unreachable" in driver.find_element(By.ID, "dq-status").get_attribute("title")
            # the sources' timeliness is unknown too; the live log is being written: seconds old
            assert re.fullmatch(
                r"freshness: sources \? · log [\d.]+ s old", driver.find_element(By.ID, "fresh-status").text
            )
            shot = tmp_path / "dashboard.png"
            driver.save_screenshot(str(shot))
            ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, ARTIFACT)
            print(f"\ndashboard screenshot: {ARTIFACT} (and {shot})")
            errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
            assert not errors, errors
            # the API docs of both services render with no internet (Swagger UI and ReDoc from the installed
            # files), and ask nothing of it: no failed request in the browser's log
            for docs, operation in (
                (f"{api.url}/docs", "#swagger-ui .opblock"),
                (f"{prediction_service}/api/docs", "#swagger-ui .opblock"),
                (f"{api.url}/redoc", "[data-section-id^='operation/']"),
                (f"{prediction_service}/api/redoc", "[data-section-id^='operation/']"),
            ):
                driver.get(docs)
                operations = _wait(
                    f"the operations listed at {docs}",
                    lambda operation=operation: driver.find_elements(By.CSS_SELECTOR, operation),
                    timeout=30,
                )
                assert len(operations) >= 3, docs
                errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
                assert not errors, (docs, errors)
        finally:
            driver.quit()
            engine.stop()
        assert engine.error is None, engine.error
        assert engine.engine is not None and engine.engine.stats.messages > 100
    assert Path(ARTIFACT).stat().st_size > 10_000
