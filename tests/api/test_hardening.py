"""The live API against bad and hostile requests (issue 9), on a running ``python -m serving.api``:
bad values are a 422 naming the field, never a 500 nor a silent coercion; bodies over the limit are
refused with a small JSON 413 before they are read; validation errors are bounded; every error is
JSON; the client's address is the socket's peer unless a configured proxy forwarded the request; the
process listens on the loopback interface unless told otherwise."""

from __future__ import annotations

import json
import re
import shutil
import time

import pytest

from tests.api.services import TOKEN, api_server, get, listening_addresses, oversized, request, send_raw

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def db_url(session_log, tmp_path_factory):
    path = tmp_path_factory.mktemp("hardening") / "live.db"
    shutil.copyfile(session_log, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def api(db_url, tmp_path_factory):
    with api_server(db_url, tmp_path_factory.mktemp("hardening-api")) as server:
        yield server


def _json_error(status: int, raw: bytes, headers: dict, code: int, error: str, *fields: str) -> dict:
    assert status == code, raw[:500]
    assert headers.get("content-type", "").startswith("application/json"), headers
    body = json.loads(raw)
    assert body["error"] == error and isinstance(body["message"], str) and body["message"], body
    for field in fields:
        assert any(d["loc"][-1] == field for d in body["detail"]), body
    return body


def _version(api) -> int:
    return get(f"{api.url}/control", AUTH)[1]["controls"]["version"]


def test_huge_integers_and_non_numbers_in_query_parameters_are_422(api):
    match_id = get(f"{api.url}/live/games/active")[1]["matches"][0]["match_id"]
    for path, field in (
        ("/bets?offset=669406683781648508518400", "offset"),
        ("/bets?offset=9223372036854775808", "offset"),
        ("/bets?limit=1" + "0" * 30, "limit"),
        ("/bets?offset=1e3", "offset"),
        (f"/live/value-bets/{match_id}?min_edge=nan", "min_edge"),
        (f"/live/value-bets/{match_id}?min_edge=inf", "min_edge"),
        ("/live/value-bets?min_edge=-infinity", "min_edge"),
        (f"/live/games/{match_id}/predictions?limit=" + "9" * 40, "limit"),
    ):
        _json_error(*send_raw(api.url, "GET", path), 422, "validation_error", field)


def test_nan_and_infinity_in_bodies_are_422_naming_the_field(api):
    before = _version(api)
    for method, path, text, field in (
        ("PUT", "/control/risk-limits", '{"max_stake": NaN}', "max_stake"),
        ("PUT", "/control/risk-limits", '{"daily_loss_limit": Infinity}', "daily_loss_limit"),
        ("PUT", "/control/risk-limits", '{"min_edge": -Infinity}', "min_edge"),
        ("POST", "/live/alerts/subscribe", '{"min_edge": NaN}', "min_edge"),
    ):
        _json_error(*send_raw(api.url, method, path, text.encode(), AUTH), 422, "validation_error", field)
    assert _version(api) == before  # nothing was recorded


def test_operator_bodies_are_never_coerced(api):
    before = _version(api)
    for method, path, body, field in (
        ("POST", "/control/kill-switch", {"engaged": 0}, "engaged"),
        ("POST", "/control/kill-switch", {"engaged": 1}, "engaged"),
        ("POST", "/control/kill-switch", {"engaged": "true"}, "engaged"),
        ("POST", "/control/kill-switch", {"engaged": "false"}, "engaged"),
        ("POST", "/control/kill-switch", {"engaged": None}, "engaged"),
        ("PUT", "/control/risk-limits", {"max_open_orders": True}, "max_open_orders"),
        ("PUT", "/control/risk-limits", {"max_open_orders": 2.0}, "max_open_orders"),
        ("PUT", "/control/risk-limits", {"max_stake": "10"}, "max_stake"),
        ("PUT", "/control/risk-limits", {"max_stake": True}, "max_stake"),
        ("POST", "/control/pause", {"reason": 5}, "reason"),
        ("POST", "/live/alerts/subscribe", {"min_edge": "0.1"}, "min_edge"),
    ):
        status, err, _ = request(method, api.url + path, body, AUTH)
        assert status == 422 and err["error"] == "validation_error", (body, status, err)
        assert any(d["loc"][-1] == field for d in err["detail"]), err
    assert _version(api) == before
    assert get(f"{api.url}/control", AUTH)[1]["controls"]["kill_switch"] is False


def test_bodies_over_the_limit_are_refused_before_they_are_read(api):
    for chunked in (False, True):
        status, raw = oversized(api.url, "/live/alerts/subscribe", chunked=chunked)
        assert status == 413 and len(raw) < 1000, raw[:300]
        body = json.loads(raw)
        assert body["error"] == "payload_too_large" and "bytes" in body["message"]
    status, _, _ = request("POST", f"{api.url}/live/alerts/subscribe", {"players": ["Djokovic"]})
    assert status == 201  # the server is fine and ordinary bodies pass


def test_validation_errors_are_bounded(api):
    body = {
        name: "x" * 4_000
        for name in (
            "max_stake",
            "max_selection_exposure",
            "max_market_exposure",
            "max_total_exposure",
            "daily_loss_limit",
            "weekly_loss_limit",
            "daily_profit_target",
            "min_edge",
            "min_confidence",
            "min_price",
            "max_price",
            "max_open_orders",
            "max_orders_per_hour",
        )
    }
    status, raw, headers = send_raw(api.url, "PUT", "/control/risk-limits", json.dumps(body).encode(), AUTH)
    err = _json_error(status, raw, headers, 422, "validation_error", "max_stake")
    assert len(err["detail"]) <= 10 and len(raw) < 5000, len(raw)
    assert all(len(str(d.get("input", ""))) <= 210 for d in err["detail"])


def test_unknown_paths_methods_and_media_types_are_json(api):
    _json_error(*send_raw(api.url, "GET", "/nothing/here"), 404, "not_found")
    _json_error(*send_raw(api.url, "DELETE", "/bets"), 405, "method_not_allowed")
    _json_error(*send_raw(api.url, "POST", "/live/alerts/subscribe", b"{not json"), 422, "validation_error")
    _json_error(*send_raw(api.url, "POST", "/live/alerts/subscribe", b"[]"), 422, "validation_error")


def test_an_unexpected_exception_is_a_json_500_without_details(tmp_path):
    """In process: a handler that raises (a bug) answers JSON ``internal_error``, not a stack trace."""
    from fastapi.testclient import TestClient

    from serving.api.app import ApiConfig, create_app
    from serving.api.live import LiveService
    from serving.api.status import ServiceStatus
    from storage.db import make_engine, migrate

    url = f"sqlite:///{tmp_path / 'live.db'}"
    migrate(url)
    db = make_engine(url)
    app = create_app(
        LiveService(db, 1000.0), ServiceStatus("http://127.0.0.1:9", "http://127.0.0.1:9"), ApiConfig(run_service=False)
    )

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("secret detail of the failure")

    with TestClient(app, raise_server_exceptions=False) as client:
        resp = client.get("/boom")
    db.dispose()
    assert resp.status_code == 500 and resp.headers["content-type"].startswith("application/json")
    assert resp.json()["error"] == "internal_error" and "secret detail" not in resp.text


def test_a_spoofed_forwarded_for_changes_neither_the_rate_limit_nor_the_audit(log_copy, tmp_path):
    with api_server(log_copy, tmp_path, "--rate-limit", "5/3") as api:
        time.sleep(3.1)  # the start-up probes leave the window
        codes = [get(f"{api.url}/live/games/active", {"X-Forwarded-For": f"198.51.100.{i}"})[0] for i in range(6)]
        assert codes == [200] * 5 + [429]  # one client (the socket's peer), whatever it claims
        time.sleep(3.1)
        status, state, _ = request(
            "POST",
            f"{api.url}/control/pause",
            {"reason": "spoof"},
            {**AUTH, "X-Forwarded-For": "203.0.113.9", "X-Real-IP": "203.0.113.10", "Forwarded": "for=203.0.113.11"},
        )
        assert status == 200 and state["controls"]["changed_by"] == "127.0.0.1"


def test_forwarded_for_is_believed_from_a_configured_proxy_only(log_copy, tmp_path):
    env = {"COURTSIDE_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"}
    with api_server(log_copy, tmp_path, "--rate-limit", "5/3", env=env) as api:
        time.sleep(3.1)
        one = {"X-Forwarded-For": "192.0.2.1, 198.51.100.20"}  # the left hop is the client's own claim
        codes = [get(f"{api.url}/live/games/active", one)[0] for _ in range(6)]
        assert codes == [200] * 5 + [429]
        assert "198.51.100.20" in get(f"{api.url}/live/games/active", one)[1]["message"]
        assert get(f"{api.url}/live/games/active", {"X-Forwarded-For": "198.51.100.21"})[0] == 200  # another client
        status, state, _ = request(
            "POST", f"{api.url}/control/pause", None, {**AUTH, "X-Forwarded-For": "198.51.100.7, 203.0.113.9, 10.1.2.3"}
        )
        assert status == 200 and state["controls"]["changed_by"] == "203.0.113.9"  # rightmost untrusted hop


def test_the_api_and_the_gateway_listen_on_loopback_by_default(api):
    for url in (api.url, api.ws_url):
        port = int(url.split(":")[2].split("/")[0])
        assert listening_addresses(port) == {"127.0.0.1"}, url


def _docs_are_offline(base: str, path: str, assets_at_least: int = 3) -> None:
    """The docs page's scripts and styles are served by the service itself (no CDN): it renders offline. The
    page names no external address at all (no ``http``: every URL in it is a path on the service)."""
    status, raw, headers = send_raw(base, "GET", path)
    assert status == 200 and headers.get("content-type", "").startswith("text/html"), raw[:300]
    page = raw.decode()
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', page)
    assert len(assets) >= assets_at_least and all(a.startswith(f"{path}/static/") for a in assets), assets
    for asset in assets:
        status, body, _ = send_raw(base, "GET", asset)
        assert status == 200 and len(body) > 500, asset
    assert "cdn." not in page and "unpkg" not in page
    assert "http" not in page.lower() and "//" not in re.sub(r"<!--.*?-->", "", page, flags=re.S), page


def test_the_docs_pages_of_both_services_need_no_internet(api, prediction_service):
    _docs_are_offline(api.url, "/docs")
    _docs_are_offline(prediction_service, "/api/docs")
    for base, path in ((api.url, "/docs"), (prediction_service, "/api/docs")):
        # Swagger UI's default shows a badge from validator.swagger.io when the page is not on loopback
        assert '"validatorUrl": null' in send_raw(base, "GET", path)[1].decode(), path


def test_the_redoc_pages_of_both_services_need_no_internet(api, prediction_service):
    """ReDoc's bundle comes from the installed fastapi-offline package; no Google fonts, no CDN."""
    for base, path in ((api.url, "/redoc"), (prediction_service, "/api/redoc")):
        _docs_are_offline(base, path, assets_at_least=2)
        page = send_raw(base, "GET", path)[1].decode()
        scripts = re.findall(r'<script[^>]*\ssrc="([^"]*)"', page)
        assert scripts == [f"{path}/static/redoc.standalone.js"], scripts
        assert '<redoc spec-url="/openapi.json">' in page, page
        bundle = send_raw(base, "GET", scripts[0])[1]  # the logo it would load from the internet is replaced
        assert len(bundle) > 500_000 and b"cdn.redoc.ly" not in bundle and b"Redoc" in bundle
