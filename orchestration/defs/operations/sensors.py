"""Sensors: retrain when files in the data directory are added or changed."""


import hashlib
import json

import dagster as dg

from orchestration.defs.operations.jobs import retrain_job
from orchestration.defs.shared.resources import CourtsideResource


def fingerprint_digest(fingerprint: dict[str, str]) -> str:
    """One short token for the state of every file in the data directory."""
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:16]


@dg.sensor(job=retrain_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def data_files_changed(context: dg.SensorEvaluationContext, courtside: CourtsideResource) -> dg.SensorResult:
    """Requests a retrain when a file in COURTSIDE_DATA_DIR is added, removed or modified.

    The cursor holds the fingerprint (size and modification time of every file) last seen; the
    first evaluation only records it, because ``make up`` has just run the pipeline on those files.
    """
    current = courtside.source().fingerprint()
    if not current:
        return dg.SensorResult(skip_reason="data source has no local files to watch (upstream URLs)")
    digest = fingerprint_digest(current)
    if context.cursor is None:
        return dg.SensorResult(cursor=json.dumps({"digest": digest, "files": current}),
                               skip_reason=f"recorded {len(current)} files")
    previous = json.loads(context.cursor)
    if previous["digest"] == digest:
        return dg.SensorResult(skip_reason="no file changed")
    before = previous.get("files", {})
    changed = sorted(k for k in set(current) | set(before) if current.get(k) != before.get(k))
    context.log.info(f"{len(changed)} data files changed: {changed[:10]}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"data-{digest}", tags={"courtside/changed_files":
                                                                     ",".join(changed[:20])[:1000]})],
        cursor=json.dumps({"digest": digest, "files": current}),
    )
