"""The engine's client of the BentoML prediction service: one pooled keep-alive HTTP session,
batched ``/predict_live`` calls, a short timeout (no prediction means no bet, never a stale one)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

PROBE_STATE = {
    "match_id": "readiness-probe",
    "best_of": 3,
    "tournament": "",
    "season": 2021,
    "server": 1,
    "prematch_probability": 0.5,
}
"""A match state any running service answers (the engine asks it before it starts following the feed)."""


class PredictionUnavailable(RuntimeError):
    """The service did not answer in time or answered with an error."""


class PredictionRefused(PredictionUnavailable):
    """The service refused the states (4xx): asking again will not help — no prediction for them."""


@dataclass
class PredictionClient:
    """POSTs batches of match states to ``{url}/predict_live``."""

    url: str
    timeout_s: float = 0.5
    _session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PredictionClient:
        connector = aiohttp.TCPConnector(limit=4, keepalive_timeout=60)
        self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self

    async def __aexit__(self, *exc) -> None:
        if self._session is not None:
            await self._session.close()

    async def predict_live(self, states: list[dict]) -> list[dict]:
        """One prediction per state (same order)."""
        assert self._session is not None, "use 'async with PredictionClient(...)'"
        try:
            async with self._session.post(f"{self.url.rstrip('/')}/predict_live", json={"states": states}) as resp:
                body = await resp.json(content_type=None)
                if 400 <= resp.status < 500:
                    raise PredictionRefused(f"/predict_live refused the states ({resp.status}): {str(body)[:300]}")
                if resp.status != 200:
                    raise PredictionUnavailable(f"/predict_live answered {resp.status}: {str(body)[:300]}")
                return body["predictions"]
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise PredictionUnavailable(f"/predict_live unreachable: {type(exc).__name__}: {exc}") from None

    async def wait_ready(self, timeout_s: float = 120.0) -> bool:
        """Wait until the service can answer the engine: ``/readyz`` (every model loaded), or at least
        ``/predict_live`` answering a probe state (the in-play path needs no pre-match champion)."""
        assert self._session is not None
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            try:
                async with self._session.get(f"{self.url.rstrip('/')}/readyz") as resp:
                    if resp.status == 200:
                        return True
                await self.predict_live([PROBE_STATE])
                return True
            except (TimeoutError, aiohttp.ClientError, PredictionUnavailable):
                pass
            await asyncio.sleep(1.0)
        return False
