"""Who may use the WebSocket gateway of a running API process (issue 9): a browser page of a foreign
Origin is refused at the handshake (a page of the dashboard's own origin and a client sending no
Origin are not); the ``ledger`` and ``alert:<id>`` rooms need the read token or the operator token
(in the subscribe message or as a bearer token on the handshake) while match rooms and ``*`` stay
public; with no token configured those rooms are closed; tokens never reach the log."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.api.services import TOKEN, api_server, get, request

READ = "test-read-token-7c1e0b93a2d54f"
WRONG = "wrong-read-token-0123456789"


@pytest.fixture(scope="module")
def db_url(session_log, tmp_path_factory):
    path = tmp_path_factory.mktemp("gateway-access") / "live.db"
    shutil.copyfile(session_log, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def api(db_url, tmp_path_factory):
    with api_server(
        db_url, tmp_path_factory.mktemp("gateway-access-api"), env={"COURTSIDE_READ_TOKEN": READ}
    ) as server:
        yield server


async def _ask(ws, msg: dict) -> dict:
    await ws.send(json.dumps(msg))
    while True:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if reply["type"] != "heartbeat":
            return reply


async def _refused(url: str, **kwargs) -> tuple[int, dict]:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url, **kwargs):
            pass
    response = caught.value.response
    return response.status_code, json.loads(response.body)


def test_a_page_of_a_foreign_origin_is_refused_at_the_handshake(api):
    port = api.url.rsplit(":", 1)[1]

    async def scenario():
        for origin in (
            "http://evil.example",
            f"http://evil.example:{port}",
            f"http://127.0.0.1:{int(port) + 1}",
            "null",
        ):
            status, body = await _refused(api.ws_url, origin=origin)
            assert status == 403 and body["error"] == "forbidden" and "COURTSIDE_ALLOWED_ORIGINS" in body["message"]
        for origin in (api.url, f"http://localhost:{port}", None):  # the dashboard's own origins, or no browser
            async with connect(api.ws_url, origin=origin) as ws:
                assert (await _ask(ws, {"type": "subscribe", "match_id": "*"}))["type"] == "subscribed"
        status, body = await _refused(api.ws_url.replace("/ws", "/elsewhere"))
        assert status == 404 and body["error"] == "not_found"

    asyncio.run(scenario())
    status, body, _ = get(api.ws_url.replace("ws://", "http://"))  # not a WebSocket handshake: JSON too
    assert status == 426 and body["error"] == "upgrade_required"


def test_configured_origins_replace_the_default(db_url, tmp_path):
    env = {"COURTSIDE_ALLOWED_ORIGINS": "https://trader.example, https://desk.example:8443"}
    with api_server(db_url, tmp_path, env=env) as api:

        async def scenario():
            for origin in ("https://trader.example", "https://desk.example:8443"):
                async with connect(api.ws_url, origin=origin) as ws:
                    assert (await _ask(ws, {"type": "ping"}))["type"] == "pong"
            assert (await _refused(api.ws_url, origin=api.url))[0] == 403

        asyncio.run(scenario())


def test_ledger_and_alert_rooms_need_a_token_match_rooms_do_not(api):
    status, alert, _ = request("POST", f"{api.url}/live/alerts/subscribe", {"min_edge": 0.01})
    assert status == 201
    match_id = get(f"{api.url}/live/games/active")[1]["matches"][0]["match_id"]

    async def scenario():
        async with connect(api.ws_url) as ws:
            for room in ("ledger", alert["room"], "alert:no-such-alert"):
                reply = await _ask(ws, {"type": "subscribe", "match_id": room})
                assert reply["type"] == "error" and reply["code"] == "token_required", reply
                assert "token" in reply["message"]
                reply = await _ask(ws, {"type": "subscribe", "match_id": room, "token": WRONG})
                assert reply["type"] == "error" and reply["code"] == "bad_token", reply
                reply = await _ask(ws, {"type": "subscribe", "match_id": room, "token": 12345})
                assert reply["type"] == "error" and reply["code"] == "bad_token", reply
            for room in ("*", match_id):  # public
                assert (await _ask(ws, {"type": "subscribe", "match_id": room}))["type"] == "subscribed"
            ack = await _ask(ws, {"type": "subscribe", "match_id": "ledger", "token": READ})
            assert ack["type"] == "subscribed" and ack["snapshot"][0]["type"] == "bankroll_update"
            # the connection has shown a token: its other protected rooms need no second one
            assert (await _ask(ws, {"type": "subscribe", "match_id": alert["room"]}))["type"] == "subscribed"
        async with connect(api.ws_url) as ws:  # the operator's token opens them too
            assert (await _ask(ws, {"type": "subscribe", "match_id": "ledger", "token": TOKEN}))["type"] == "subscribed"
        for token in (READ, TOKEN):  # or a bearer token on the handshake (clients that can set headers)
            async with connect(api.ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
                assert (await _ask(ws, {"type": "subscribe", "match_id": "ledger"}))["type"] == "subscribed"
        async with connect(api.ws_url, additional_headers={"Authorization": f"Bearer {WRONG}"}) as ws:
            assert (await _ask(ws, {"type": "subscribe", "match_id": "ledger"}))["code"] == "token_required"

    asyncio.run(scenario())
    output = api.output()
    assert "GET /live/games/active" in output  # the process logs ...
    assert READ not in output and TOKEN not in output and WRONG not in output  # ... but never a token


def test_without_any_token_configured_the_ledger_is_closed(db_url, tmp_path):
    with api_server(db_url, tmp_path, token=None) as api:

        async def scenario():
            async with connect(api.ws_url) as ws:
                for msg in (
                    {"type": "subscribe", "match_id": "ledger"},
                    {"type": "subscribe", "match_id": "ledger", "token": READ},
                ):
                    reply = await _ask(ws, msg)
                    assert reply["type"] == "error" and reply["code"] == "room_closed", reply
                    assert "COURTSIDE_READ_TOKEN" in reply["message"]
                assert (await _ask(ws, {"type": "subscribe", "match_id": "*"}))["type"] == "subscribed"

        asyncio.run(scenario())


def test_a_read_token_shorter_than_16_characters_is_refused_at_start(db_url, tmp_path):
    with (
        pytest.raises(RuntimeError, match="at least 16"),
        api_server(db_url, tmp_path, env={"COURTSIDE_READ_TOKEN": "short-token"}, timeout_s=30),
    ):
        pass
