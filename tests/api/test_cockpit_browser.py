"""The trader's cockpit in a real browser (headless Chromium) during a real replay: a feed server process
publishes real Wimbledon 2012 matches, the streaming engine trades them (its ``run`` loop, predictions from
a real ``bentoml serve``), the API process serves the page. From the page alone we

- pause betting with the operator token (kept in sessionStorage), confirm in the page's dialog and see the
  engine acknowledge it (and ``GET /control`` agrees);
- see each match's worst-case liability equal what the ledger implies (computed here from ``GET
  /bets?state=open`` with ``betting.exposure``'s per-order outcome P&L, worst case over the two winners);
- open a bet's lineage (ledger row) and a rejected value bet's lineage, and find the feed sequence, the
  model version, each risk check and the fate that ``GET /bets/{ref}`` gives;
- open a match view: full names, the book with prices and sizes, the chart with axes and the match's bets
  on it as markers.

Screenshots of each step: ``.courtside/artifacts/cockpit-*.png`` (paths printed)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

from betting.exposure import order_outcome_pnl
from betting.money import round_money
from betting.records import Order
from storage.db import migrate
from tests.api.services import TOKEN, api_server, feed_server, get
from tests.api.test_dashboard_browser import ARTIFACT, READ_TOKEN, EngineThread, _binaries, _wait, fresh

ARTIFACTS = ARTIFACT.parent
FIRST, SECOND = "First Player", "Second Player"
LADDER_TEXT = re.compile(r"^(\d\.\d\d|1\d\.\d|[2-9]\d\.\d\d|\d{2,4})$")
"""A price as the page writes it: the ladder step's decimals (2 below 4, 1 below 20, none above)."""


def ledger_liability(bets: list[dict]) -> dict[str, float]:
    """match id -> worst-case loss of its open orders over which of the two players wins: matched bets at their
    average price, an unmatched remainder at its limit price where it would lose (``order_outcome_pnl``)."""
    by_match: dict[str, list[Order]] = {}
    for row in bets:
        by_match.setdefault(row["match_id"], []).append(Order.from_dict(row))
    return {
        match_id: round_money(max(0.0, -min(sum(order_outcome_pnl(o, w) for o in orders) for w in (FIRST, SECOND))))
        for match_id, orders in by_match.items()
    }


def price_ok(text: str) -> bool:
    return text == "–" or bool(LADDER_TEXT.match(text)) and float(text) >= 1.01


def test_cockpit_lineage_exposure_controls_match_view(tmp_path, prediction_service):
    browser_path, driver_path = _binaries()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    shots: list[str] = []

    def shot(name: str) -> None:
        path = ARTIFACTS / f"cockpit-{name}.png"
        driver.save_screenshot(str(path))
        shots.append(str(path))
        print(f"cockpit screenshot: {path}")

    def css(sel: str, root=None):
        return (root or driver).find_elements(By.CSS_SELECTOR, sel)

    def svg_text(sel: str) -> str:
        """The text of every element ``sel`` matches, read in one go in the page (a live page re-renders its
        charts between two reads of one element: element by element, every read can go stale)."""
        return driver.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]), e => e.textContent).join(' ')", sel
        )

    def click(element) -> None:
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        element.click()

    url = f"sqlite:///{tmp_path / 'live.db'}"
    migrate(url)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with (
        feed_server(tmp_path, "2012-wimbledon", 3, rate=12) as feed_url,
        api_server(url, tmp_path, env={"COURTSIDE_READ_TOKEN": READ_TOKEN}) as api,
    ):
        engine = EngineThread(url, feed_url, prediction_service)
        engine.start()
        auth = {"Authorization": f"Bearer {TOKEN}"}

        def api_get(path: str, headers=None) -> dict:
            status, body, _ = get(f"{api.url}{path}", headers)
            assert status == 200, (path, status, body)
            return body

        options = webdriver.ChromeOptions()
        options.binary_location = browser_path
        for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100"):
            options.add_argument(arg)
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
        try:
            driver.get(f"{api.url}/dashboard/#token={READ_TOKEN}")
            _wait("a live match on the page", lambda: css('#matches .card[data-status="in_play"]'))
            click(css("#alert-value")[0])  # a beep (WebAudio) and a flash on each new actionable value bet
            # a few orders in the ledger (matched: the exposure has something to show)
            _wait(
                "matched bets in the ledger",
                lambda: sum(b["size_matched"] > 0 for b in api_get("/bets?state=open&limit=500")["bets"]) >= 2,
                timeout=60,
            )
            _wait("open bets on the page", lambda: css("#open-bets tbody tr[data-ref]"))
            _wait("the alert of a new actionable value bet", lambda: css("#value-bets tbody tr.alerting"), timeout=40)
            shot("overview")

            # --- names and formats: full names everywhere, prices on the ladder's precision -------------------
            active = api_get("/live/games/active")["matches"]
            names = {p for m in active for p in m["players"]}
            assert all(len(n.split()) >= 2 for n in names), names
            card_text = fresh(lambda: " ".join(c.text for c in css("#matches .card table.score")))
            assert "player 1" not in card_text
            for n in names:
                assert n in card_text, (n, card_text)

            def table_prices(sel: str, column: int) -> list[str]:
                return fresh(
                    lambda: [r.find_elements(By.TAG_NAME, "td")[column].get_attribute("textContent") for r in css(sel)]
                )

            prices = table_prices("#value-bets tbody tr[data-id]", 3) + table_prices("#open-bets tbody tr", 3)
            assert prices and all(price_ok(p) for p in prices), prices
            bets_text = fresh(lambda: css("#open-bets tbody")[0].text)
            assert "First Player" not in bets_text and "Second Player" not in bets_text
            assert any(n in bets_text for n in names), bets_text
            assert "replay clock" in css("#feed-clock")[0].text

            # --- pause from the page, with the operator token, confirmed in the page's dialog -----------------
            token_input = css("#controls input[name=token]")[0]
            click(token_input)
            token_input.send_keys(TOKEN)
            click(css("#controls button[data-action=save-token]")[0])
            assert token_input.get_attribute("value") == ""  # kept in sessionStorage, not in the field
            assert driver.execute_script("return sessionStorage.getItem('courtside.operator-token')") == TOKEN
            assert driver.execute_script("return localStorage.length") == 0
            assert TOKEN not in driver.current_url
            click(css("#controls button[data-action=pause]")[0])
            yes = _wait("the confirm dialog", lambda: css("#confirm[open] button[data-confirm=yes]"), timeout=10)
            shot("confirm")
            click(yes[0])
            control = _wait("the pause recorded", lambda: (c := api_get("/control", auth))["controls"]["paused"] and c)
            _wait(
                "the engine to acknowledge the pause",
                lambda: f"v{control['controls']['version']} acknowledged" in css("#controls .ack")[0].text,
                timeout=30,
            )
            control = api_get("/control", auth)
            assert control["controls"]["paused"] is True
            assert control["engines"] and all(e["in_force"] for e in control["engines"])
            assert str(control["controls"]["version"]) in css("#controls .ack")[0].text
            history = fresh(lambda: [r.get_attribute("data-version") for r in css("#controls .history tbody tr")])
            assert str(control["controls"]["version"]) in history
            assert "paused" in css("#engine-status")[0].text or "paused" in css("#controls .control-state")[0].text
            # a risk-limit override, from the page's form, confirmed and acknowledged the same way
            click(css("#controls .limits-form summary")[0])
            stake = css('#controls .risk-limits input[name="max_stake"]')[0]
            click(stake)
            stake.send_keys("40")
            click(css("#controls button[data-action=limits]")[0])
            click(_wait("the confirm dialog", lambda: css("#confirm[open] button[data-confirm=yes]"), timeout=10)[0])
            version = control["controls"]["version"] + 1
            _wait(
                "the engine to acknowledge the override",
                lambda: f"v{version} acknowledged" in css("#controls .ack")[0].text,
                timeout=30,
            )
            control = api_get("/control", auth)
            assert control["controls"]["risk_limits"] == {"max_stake": 40} and control["controls"]["paused"] is True
            assert control["effective_risk_limits"]["max_stake"] == 40
            assert all(e["in_force"] for e in control["engines"])
            override = fresh(lambda: css('#controls .risk-limits tr[data-field="max_stake"] .override')[0].text)
            assert override == "40"
            click(css("#controls-section h2")[0])
            shot("controls")

            # --- exposure per match: the page's liability is what the ledger implies --------------------------
            def exposure_agrees():
                before = api_get("/bets?state=open&limit=500")["bets"]
                page = fresh(
                    lambda: {
                        r.get_attribute("data-match-id"): float(r.get_attribute("data-liability"))
                        for r in css("#exposure tr[data-match-id]")
                    }
                )
                after = api_get("/bets?state=open&limit=500")["bets"]
                if before != after:
                    return None  # the ledger moved while we read: again
                expected = ledger_liability(after)
                same = all(abs(page.get(m, -1.0) - v) < 0.005 for m, v in expected.items()) and all(
                    abs(v) < 0.005 for m, v in page.items() if m not in expected
                )
                return (page, expected) if same and expected else None

            page_exposure, expected = _wait("the page's exposure to match the ledger", exposure_agrees, timeout=30)
            assert any(v > 0 for v in expected.values()), expected
            exposure = api_get("/live/exposure")
            limit_names = {lim["name"] for lim in exposure["limits"]}
            assert limit_names and limit_names == {
                e.get_attribute("data-limit") for e in css("#limits .limit[data-limit]")
            }
            click(css("#exposure-section h2")[0])
            shot("exposure")

            # --- a bet's lineage, from the ledger table ----------------------------------------------------
            def lineage_of(row_sel: str):
                row = css(row_sel)[0]
                ref = row.get_attribute("data-ref")
                click(row)
                _wait("the lineage panel", lambda: css("#lineage[open] .trigger [data-seq]"), timeout=15)
                return ref

            def check_lineage(ref: str) -> dict:
                def agree():
                    body = api_get(f"/bets/{quote(ref)}")
                    seq = css("#lineage .trigger [data-seq]")[0].get_attribute("data-seq")
                    version = css("#lineage .model-version")[0].text
                    checks = [
                        (r.get_attribute("data-check"), r.get_attribute("data-passed"))
                        for r in css("#lineage table.risk-checks tr[data-check]")
                    ]
                    fate = css("#lineage .fate[data-status]")[0].get_attribute("data-status")
                    want = [(c["check"], str(c["passed"]).lower()) for c in body["risk_checks"]]
                    ok = (
                        seq == str(body["trigger"]["seq"])
                        and version == str(body["prediction"]["version"])
                        and checks == want
                        and fate == body["fate"]["status"]
                    )
                    return body if ok else None

                body = _wait(f"the lineage of {ref} to match GET /bets/{ref}", lambda: fresh(agree), timeout=15)
                assert body["trigger"]["seq"] is not None and body["prediction"]["version"]
                return body

            ref = lineage_of("#open-bets tbody tr[data-ref]")
            placed = check_lineage(ref)
            assert placed["risk_checks"] and all(c["passed"] for c in placed["risk_checks"])
            for c in placed["risk_checks"]:
                row = css(f'#lineage table.risk-checks tr[data-check="{c["check"]}"]')[0]
                assert "pass" in row.text
            assert placed["fate"]["status"] in ("placed", "matched", "lapsed", "cancelled", "settled")
            timeline = css("#lineage ol.timeline li[data-kind]")
            assert len(timeline) == len(placed["timeline"]) and timeline
            assert css("#lineage .stake-rule")[0].text.endswith(f"stake {placed['decision']['size']:.2f}")
            shot("lineage")
            click(css("#lineage [data-close]")[0])
            _wait("the lineage panel to close", lambda: not css("#lineage[open]"), timeout=5)

            # --- a rejected value bet's lineage (paused: BETTING_PAUSED), shown with "show all" ----------------
            click(css("#show-all-value")[0])
            _wait(
                "a value bet rejected while paused",
                lambda: css('#value-bets tbody tr[data-fate="rejected"][data-ref]'),
                timeout=40,
            )
            row = css('#value-bets tbody tr[data-fate="rejected"][data-ref]')[0]
            assert "betting paused" in row.text
            ref = lineage_of('#value-bets tbody tr[data-fate="rejected"][data-ref]')
            rejected = check_lineage(ref)
            assert rejected["fate"] == {
                "status": "rejected",
                "reason": "BETTING_PAUSED",
                "message": rejected["fate"]["message"],
            }
            assert "betting paused" in css("#lineage .fate")[0].text
            shot("lineage-rejected")
            click(css("#lineage [data-close]")[0])
            _wait("the lineage panel to close", lambda: not css("#lineage[open]"), timeout=5)
            shot("value-bets")

            # --- the match view: names, book with sizes, chart with axes and the bets on it ---------------------
            match_id = max(expected, key=lambda m: expected[m])
            match_bets = api_get(f"/bets?match_id={quote(match_id)}&state=all&limit=500")
            players = api_get(f"/live/games/{quote(match_id)}/state")["match"]["players"]
            click(css(f'#matches .card[data-match-id="{match_id}"]')[0])
            _wait("the match view", lambda: css(f'#match-view[open][data-match-id="{match_id}"]'), timeout=10)
            book_rows = _wait("the book", lambda: css("#match-view table.book tbody tr[data-selection]"), timeout=15)
            assert len(book_rows) >= 2

            def read_book():
                return [
                    [td.text for td in r.find_elements(By.TAG_NAME, "td")]
                    for r in css("#match-view table.book tbody tr[data-selection]")
                ]

            book = fresh(read_book)
            assert {r[0] for r in book} <= set(players), (book, players)
            for _name, back, back_size, lay, lay_size in book:
                assert price_ok(back) and price_ok(lay), book
                assert re.fullmatch(r"\d+\.\d\d|–", back_size) and re.fullmatch(r"\d+\.\d\d|–", lay_size), book
            markers = _wait(
                "the bets on the chart",
                lambda: len(css("#match-view svg.chart .bet-marker")) >= match_bets["total"] > 0,
                timeout=15,
            )
            assert markers
            sides = fresh(lambda: {m.get_attribute("data-side") for m in css("#match-view svg.chart .bet-marker")})
            assert sides <= {"BACK", "LAY"} and sides
            axis_text = svg_text("#match-view svg.chart text")
            assert "points played" in axis_text and "100%" in axis_text and "0%" in axis_text
            title = css("#match-view .title")[0].text
            assert title == f"{players[0]} v {players[1]}"
            view_bets = fresh(lambda: css("#match-view table.bets tbody")[0].text)
            assert any(p in view_bets for p in players) and "First Player" not in view_bets
            shot("match-view")
            # a marker opens its lineage on top of the match view
            driver.execute_script(
                "arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))",
                css("#match-view svg.chart .bet-marker")[0],
            )
            _wait("the marker's lineage", lambda: css("#lineage[open] .trigger [data-seq]"), timeout=15)
            click(css("#lineage [data-close]")[0])
            click(css("#match-view [data-close]")[0])

            # the cards' charts have axes too
            card_axis = svg_text("#matches .card svg.winprob text")
            assert "points played" in card_axis and "100%" in card_axis
            assert "settled markets" in svg_text("#bankroll-chart text")

            errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
            assert not errors, errors
        finally:
            driver.quit()
            engine.stop()
        assert engine.error is None, engine.error
    print("cockpit screenshots:\n  " + "\n  ".join(shots))
    assert len(shots) >= 6
    for s in shots:
        assert Path(s).stat().st_size > 10_000, s
