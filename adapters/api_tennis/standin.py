"""A local stand-in for API-Tennis: its live push (WebSocket ``/live?APIkey=KEY``) and its REST
``get_livescore`` (``/tennis/?method=get_livescore&APIkey=KEY``), on one aiohttp server bound to 127.0.0.1.

It plays matches given as the vendor's snapshots (``vendor.snapshots``, built from real point-by-point
data): each tick pushes every live match's next snapshot, as one JSON list, to the connected clients. Like
the vendor it keeps no history for a client: what is pushed while a client is away is lost to it, and
``get_livescore`` answers the matches' latest snapshots. A wrong key gets HTTP 403 on the push and the
vendor's error object on REST. Faults for tests: ``duplicate_every`` (a snapshot pushed twice) and
``drop()`` (close every connection now).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from aiohttp import WSCloseCode, web

WRONG_KEY = {"error": "1", "result": [{"param": "APIkey", "msg": "Wrong login credentials", "cod": 1}]}


@dataclass
class ApiTennisStandIn:
    matches: list[list[dict]]
    """Each match's snapshots in order (they start together and go on one snapshot a tick)."""
    key: str = "test-key"
    duplicate_every: int = 0
    """Push every n-th snapshot twice (0: never)."""
    ticks: int = 0
    pushes: int = 0
    rest_calls: int = 0
    latest: dict[str, dict] = field(default_factory=dict)
    _positions: dict[int, int] = field(default_factory=dict)
    odds: dict[str, dict] = field(default_factory=dict)
    """``get_odds``'s answer: vendor match key -> {"Home/Away": {"Home": {bookmaker: price}, "Away": {...}}}."""
    fail_next: int = 0
    """REST faults: answer this many calls with HTTP 500."""
    slow_s: float = 0.0
    """REST faults: wait this long before answering."""
    _clients: set[web.WebSocketResponse] = field(default_factory=set)
    _runner: web.AppRunner | None = None

    @property
    def done(self) -> bool:
        return all(self.ticks >= len(m) for m in self.matches)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        app = web.Application()
        app.router.add_get("/live", self._live)
        app.router.add_get("/tennis/", self._rest)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        return server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        await self.drop()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _live(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("APIkey") != self.key:
            return web.json_response(WRONG_KEY, status=403)
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        self._clients.add(ws)
        try:
            async for _ in ws:  # the client says nothing; this waits for the close
                pass
        finally:
            self._clients.discard(ws)
        return ws

    async def _rest(self, request: web.Request) -> web.Response:
        self.rest_calls += 1
        if request.query.get("APIkey") != self.key:
            return web.json_response(WRONG_KEY)
        if self.slow_s:
            await asyncio.sleep(self.slow_s)
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=500, text="Internal Server Error")
        method = request.query.get("method")
        if method == "get_livescore":
            live = [s for s in self.latest.values() if s.get("event_live") == "1"]
            return web.json_response({"success": 1, "result": live})
        if method == "get_fixtures":
            fixtures = [{k: v for k, v in m[0].items() if k != "pointbypoint"} for m in self.matches if m]
            return web.json_response({"success": 1, "result": fixtures})
        if method == "get_odds":
            wanted = request.query.get("match_key")
            odds = {k: v for k, v in self.odds.items() if wanted in (None, k)}
            return web.json_response({"success": 1, "result": odds})
        return web.json_response({"error": "1", "result": [{"msg": f"method {method} not served by the stand-in"}]})

    async def tick(self) -> int:
        """Push every live match's next snapshot; returns how many matches moved."""
        batch = []
        for snapshots in self.matches:
            if self.ticks < len(snapshots):
                snap = snapshots[self.ticks]
                self.latest[str(snap["event_key"])] = snap
                batch.append(snap)
        self.ticks += 1
        if batch:
            await self._push(batch, 2 if self.duplicate_every and self.ticks % self.duplicate_every == 0 else 1)
        return len(batch)

    async def _push(self, batch: list[dict], repeats: int = 1) -> None:
        """One push of ``batch`` to every connected client (``repeats`` times: a duplicate push)."""
        text = json.dumps(batch)
        for ws in list(self._clients):
            for _ in range(repeats):
                try:
                    await ws.send_str(text)
                    self.pushes += 1
                except ConnectionResetError:
                    self._clients.discard(ws)

    async def push_next(self, index: int) -> bool:
        """Push only match ``index``'s next snapshot (matches on their own timelines); False when it has none left."""
        at = self._positions.get(index, 0)
        snapshots = self.matches[index]
        if at >= len(snapshots):
            return False
        self._positions[index] = at + 1
        snap = snapshots[at]
        self.latest[str(snap["event_key"])] = snap
        await self._push([snap])
        return True

    async def play(self, interval_s: float = 0.0) -> None:
        while not self.done:
            await self.tick()
            await asyncio.sleep(interval_s)

    @property
    def clients(self) -> int:
        return len(self._clients)

    async def drop(self) -> int:
        """Close every client's connection (the vendor restarts, a network cut)."""
        clients = list(self._clients)
        for ws in clients:
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"stand-in dropped the connection")
        return len(clients)
