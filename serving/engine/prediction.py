"""The engine's client of the BentoML prediction service: one pooled keep-alive HTTP session,
batched ``/predict_live`` calls, a short timeout (no prediction means no bet, never a stale one)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp


class PredictionUnavailable(RuntimeError):
    """The service did not answer in time or answered with an error."""


@dataclass
class PredictionClient:
    """POSTs batches of match states to ``{url}/predict_live``."""

    url: str
    timeout_s: float = 0.5
    _session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> PredictionClient:
        connector = aiohttp.TCPConnector(limit=4, keepalive_timeout=60)
        self._session = aiohttp.ClientSession(connector=connector,
                                              timeout=aiohttp.ClientTimeout(total=self.timeout_s))
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
                if resp.status != 200:
                    raise PredictionUnavailable(f"/predict_live answered {resp.status}: {str(body)[:300]}")
                return body["predictions"]
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise PredictionUnavailable(f"/predict_live unreachable: {type(exc).__name__}: {exc}") from None

    async def wait_ready(self, timeout_s: float = 120.0) -> bool:
        """Wait until the service reports ready (its model is loaded)."""
        assert self._session is not None
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            try:
                async with self._session.get(f"{self.url.rstrip('/')}/readyz") as resp:
                    if resp.status == 200:
                        return True
            except (TimeoutError, aiohttp.ClientError):
                pass
            await asyncio.sleep(1.0)
        return False
