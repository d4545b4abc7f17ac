"""What the dashboard shows about the services around the live lane: the model the prediction service
serves (its ``/health``), the supervisor's view of the processes of ``make up`` (``supervised_services``)
and the data-quality status — the latest result of the Great Expectations
check ``gx_live_events`` on the live event log, which Dagster records as an asset check evaluation
(read over Dagster's GraphQL API: ``serving`` never imports Dagster). Anything unreachable is
reported as ``unknown`` with the reason, never guessed. Answers are cached for a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from sqlalchemy.engine import Engine

from expectations.freshness import TIMELINESS
from storage import live, supervision

LIVE_CHECK_ASSET = "live_event_batch"
LIVE_CHECK_NAME = "gx_live_events"
FRESH_CHECK_NAME = "data_is_fresh"
_QUERY = """
query LiveChecks($assetKey: AssetKeyInput!, $checkName: String!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: 1) {
    runId status timestamp
    evaluation {
      success timestamp description
      metadataEntries {
        label
        ... on IntMetadataEntry { intValue }
        ... on FloatMetadataEntry { floatValue }
        ... on JsonMetadataEntry { jsonString }
        ... on TextMetadataEntry { text }
      }
    }
  }
}"""
_STATUS = {
    "SUCCEEDED": "passed",
    "FAILED": "failed",
    "IN_PROGRESS": "running",
    "EXECUTION_FAILED": "error",
    "SKIPPED": "skipped",
}


@dataclass
class _Cached:
    value: dict[str, Any] | None = None
    at: float = -1e9
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ServiceStatus:
    """The serving model and the data-quality status, cached for ``ttl_s``."""

    def __init__(self, prediction_url: str, dagster_url: str, ttl_s: float = 10.0, timeout_s: float = 3.0):
        self.prediction_url = prediction_url.rstrip("/")
        self.dagster_url = dagster_url.rstrip("/")
        self.ttl_s = ttl_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._model = _Cached()
        self._quality = _Cached()

    def services(self, db: Engine) -> dict[str, Any]:
        """The supervisor's view of the services of ``make up`` (``supervised_services``; blocking: a database read)."""
        return supervised_services(db)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def _cached(self, slot: _Cached, fetch) -> dict[str, Any]:
        async with slot.lock:
            if slot.value is None or time.monotonic() - slot.at > self.ttl_s:
                slot.value, slot.at = await fetch(), time.monotonic()
            return slot.value

    async def model(self) -> dict[str, Any]:
        """The prediction service's ``/health``: model name, version, kind, status (or unknown + why)."""
        return await self._cached(self._model, self._fetch_model)

    async def data_quality(self) -> dict[str, Any]:
        """The latest ``gx_live_events`` evaluation (or unknown + why), and the sources' timeliness checks."""
        return await self._cached(self._quality, self._fetch_all_quality)

    async def _fetch_all_quality(self) -> dict[str, Any]:
        live_check, sources = await asyncio.gather(self._fetch_quality(), self._fetch_sources())
        return {**live_check, "sources": sources}

    async def _fetch_sources(self) -> dict[str, Any]:
        """The latest ``data_is_fresh`` evaluation of each dated source (``expectations.freshness.TIMELINESS``)."""
        url = f"{self.dagster_url}/graphql"
        out: list[dict[str, Any]] = []
        for dataset in TIMELINESS:
            payload = {
                "query": _QUERY,
                "variables": {"assetKey": {"path": [f"raw_{dataset}"]}, "checkName": FRESH_CHECK_NAME},
            }
            try:
                async with self._http().post(url, json=payload) as resp:
                    body = json.loads(await resp.text()) if resp.status == 200 else {}
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                return {"status": "unknown", "reason": f"Dagster unreachable at {url}: {type(exc).__name__}"}
            executions = (body.get("data") or {}).get("assetCheckExecutions") or []
            if not executions:
                out.append({"dataset": dataset, "status": "unknown"})
                continue
            evaluation = executions[0].get("evaluation") or {}
            meta = {
                m["label"]: m.get("intValue", m.get("floatValue", m.get("jsonString", m.get("text"))))
                for m in evaluation.get("metadataEntries") or []
            }
            out.append(
                {
                    "dataset": dataset,
                    "status": "fresh" if evaluation.get("success") else "stale",
                    "newest_record": meta.get("newest_record"),
                    "age_days": meta.get("age_days"),
                }
            )
        fresh = sum(s["status"] == "fresh" for s in out)
        known = sum(s["status"] != "unknown" for s in out)
        return {"status": "known" if known else "unknown", "fresh": fresh, "checked": known, "sources": out}

    async def _fetch_model(self) -> dict[str, Any]:
        url = f"{self.prediction_url}/health"
        try:
            async with self._http().get(url) as resp:
                if resp.status != 200:
                    return {"status": "unknown", "reason": f"{url} answered {resp.status}", "url": url}
                body = await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return {
                "status": "unknown",
                "reason": f"prediction service unreachable at {url}: {type(exc).__name__} {exc}".strip(),
                "url": url,
            }
        return {
            "status": body.get("status", "unknown"),
            "model_name": body.get("model_name"),
            "model_version": body.get("model_version"),
            "model_kind": body.get("model_kind"),
            "features_as_of": body.get("features_as_of"),
            "last_error": body.get("last_error"),
            "url": url,
        }

    async def _fetch_quality(self) -> dict[str, Any]:
        url = f"{self.dagster_url}/graphql"
        base = {"check": LIVE_CHECK_NAME, "asset": LIVE_CHECK_ASSET, "source": url}
        payload = {
            "query": _QUERY,
            "variables": {"assetKey": {"path": [LIVE_CHECK_ASSET]}, "checkName": LIVE_CHECK_NAME},
        }
        try:
            async with self._http().post(url, json=payload) as resp:
                text = await resp.text()
                if resp.status != 200:
                    return {**base, "status": "unknown", "reason": f"Dagster answered {resp.status}: {text[:200]}"}
                body = json.loads(text)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return {
                **base,
                "status": "unknown",
                "reason": f"Dagster unreachable at {url}: {type(exc).__name__} {exc}".strip(),
            }
        if body.get("errors"):
            return {**base, "status": "unknown", "reason": f"Dagster GraphQL error: {body['errors'][0].get('message')}"}
        executions = (body.get("data") or {}).get("assetCheckExecutions") or []
        if not executions:
            return {
                **base,
                "status": "unknown",
                "reason": "no evaluation recorded yet: the streaming sensor requests "
                "live_data_checks when new log entries arrive",
            }
        ex = executions[0]
        evaluation = ex.get("evaluation") or {}
        meta = {
            m["label"]: m.get("intValue", m.get("floatValue", m.get("jsonString")))
            for m in evaluation.get("metadataEntries") or []
        }
        failed = meta.get("failed_expectations")
        try:
            failed = list(json.loads(failed)) if isinstance(failed, str) else []
        except ValueError:
            failed = []
        status = _STATUS.get(ex.get("status"), "unknown")
        if status == "failed" and evaluation.get("success"):
            status = "passed"
        return {
            **base,
            "status": status,
            "run_id": ex.get("runId"),
            "evaluated_at": evaluation.get("timestamp") or ex.get("timestamp"),
            "evaluated_rows": meta.get("evaluated_rows"),
            "expectations": meta.get("expectations"),
            "failed_expectations": failed,
            "description": evaluation.get("description"),
        }


# --- the supervisor of make up (issue 9) ----------------------------------------------------------------
SUPERVISOR_SILENT_S = 30.0
"""The supervisor reports every few seconds; older than this, its view is marked ``silent``."""


def supervised_services(db: Engine, now: datetime | None = None) -> dict[str, Any]:
    """What the supervisor of ``make up`` last reported of each service (state, pid, restarts, last exit,
    crash loop), and the pause of betting it put in force, if that pause is still the controls in force.

    ``supervisor``: ``none`` (nothing supervised: the API runs on its own), ``reporting``, ``silent`` (no report
    for ``SUPERVISOR_SILENT_S``: make up was killed) or ``stopped``."""
    rows = supervision.service_statuses(db)
    controls = live.current_controls(db)
    now = now or datetime.now(UTC)
    reported = max((r["updated_at"] for r in rows), default=None)
    if not rows:
        supervisor = "none"
    elif all(r["state"] == "stopped" for r in rows):
        supervisor = "stopped"
    else:
        supervisor = "reporting" if (now - reported).total_seconds() <= SUPERVISOR_SILENT_S else "silent"
    pause = None
    if controls["paused"] and controls["changed_by"] == "supervisor":
        pause = {"reason": controls["reason"], "since": controls["changed_at"], "controls_version": controls["version"]}
    return {
        "supervisor": supervisor,
        "reported_at": reported,
        "crash_loop": [r["service"] for r in rows if r["crash_loop"]],
        "betting_paused": pause,
        "items": rows,
    }
