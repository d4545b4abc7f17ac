"""Great Expectations results as Dagster asset check results."""

from typing import Any

import dagster as dg

from expectations.runner import SuiteResult


def check_result(
    result: SuiteResult, check_name: str | None = None, also_failed: str | None = None, **extra: Any
) -> dg.AssetCheckResult:
    """Pass/fail, the failed expectations with failing examples, and per-expectation counts (``extra``: more
    metadata; ``also_failed``: a failure outside the suite, e.g. a file that vanished)."""
    failed = {
        f.name: {
            "columns": list(f.columns),
            "unexpected_count": f.unexpected_count,
            "observed": str(f.observed_value)[:300] if f.observed_value is not None else None,
            "error": f.error,
            "examples": [dict(x) for x in f.examples[:5]],
        }
        for f in result.failures
    }
    description = (
        (f"{len(result.failures)} of {len(result.expectations)} expectations failed: " + ", ".join(failed))
        if failed
        else None
    )
    if also_failed:
        description = f"{also_failed}; {description}" if description else also_failed
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=result.success and not also_failed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            "summary": dg.MetadataValue.md(result.summary_markdown()),
            "evaluated_rows": result.evaluated_rows,
            "expectations": len(result.expectations),
            "failed_expectations": dg.MetadataValue.json(failed),
            "seconds": round(result.seconds, 2),
            **extra,
        },
    )
