"""New data never stops the pipeline silently or forever: row-level defects are set aside, systemic ones block.

``screen(dataset, frame, source)`` runs the dataset's suite on a freshly ingested frame and sorts what failed:

- **row-level defects** — an impossible value, a duplicate, a price below the ladder: rows an erratum could name.
  When each failed expectation's failing rows are at most ``QUALITY_GATE.max_bad_row_share`` of the frame, the
  rows are set aside (quarantined with the expectation's reason in words), a value of an optional column is
  removed instead of its row, and the rest goes on. The same rows are written up as proposed errata
  (``expectations.propose_errata``) for a person to accept (``courtside errata accept``);
- **systemic failures** — a schema change, a wrong type, a row count far outside the history, or one expectation
  failing on more rows than the gate allows: nothing is set aside, and the dataset's blocking check fails with
  the failed expectation and its examples (``orchestration.defs.ingest.checks``).

The thresholds live here (``QualityGate``) and are shown in the ingest asset's metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from expectations.propose_errata import Proposal, ProposedErratum, propose
from expectations.runner import SuiteResult
from feeds.historical import Rejection
from feeds.sources import DataSource


@dataclass(frozen=True)
class QualityGate:
    """Where row-level defects end and a systemic failure begins. Shares are of one source file's rows (a new
    season is a new file, so its defects are judged against it, not drowned in the history); a file needs more than
    ``min_bad_rows`` failing rows before a share can make it systemic (a short file with two bad rows is not a
    changed source)."""

    max_bad_row_share: float = 0.01
    """One expectation failing on more than this share of a file's rows is systemic (a changed source, not bad rows)."""
    max_set_aside_share: float = 0.02
    """More than this share of a file's rows to set aside is systemic too."""
    min_bad_rows: int = 25

    def systemic(self, failing: int, rows: int, share: float) -> bool:
        return failing > self.min_bad_rows and failing > share * rows

    def as_metadata(self) -> dict[str, float]:
        return asdict(self)


QUALITY_GATE = QualityGate()


@dataclass(frozen=True)
class Screened:
    dataset: str
    frame: pd.DataFrame
    """The rows kept: everything when the failure is systemic (the blocking check then shows it)."""
    set_aside: list[Rejection]
    """Rows quarantined, with the reason in words."""
    values_removed: list[Rejection]
    """Values of optional columns removed (the rest of their row kept)."""
    proposed: tuple[ProposedErratum, ...]
    """The errata that would set the same rows aside at ingest (for review)."""
    systemic: tuple[str, ...]
    """Why this dataset must block (empty: it goes on)."""
    gate: QualityGate
    result: SuiteResult
    """The suite on the frame as ingested (every failing row)."""

    @property
    def blocked(self) -> bool:
        return bool(self.systemic)


def screen(dataset: str, frame: pd.DataFrame, source: DataSource, gate: QualityGate = QUALITY_GATE) -> Screened:
    """Sort the suite's failures on ``frame`` into row-level defects (set aside) and systemic ones (kept, to block)."""
    frame = frame.reset_index(drop=True)
    proposal = propose(dataset, frame, source)
    if not proposal.result.failures:
        return Screened(dataset, frame, [], [], (), (), gate, proposal.result)
    per_file = frame["source_file"].astype(str).value_counts()
    systemic = list(proposal.unfixable)
    for f in proposal.result.failures:
        if f.unexpected_count is None:
            continue
        failing = frame["source_file"].iloc[list(f.failing_rows)].astype(str).value_counts()
        for name, n in failing.items():
            if gate.systemic(int(n), int(per_file[name]), gate.max_bad_row_share):
                systemic.append(
                    f"{f.name}: {n:,} of the {per_file[name]:,} rows of {name} fail "
                    f"(> {gate.max_bad_row_share:.1%} and > {gate.min_bad_rows}: the QualityGate)"
                )
    aside = [p for p, found in proposal.row_reasons.items() if any(c is None for c, _ in found)]
    for name, n in frame["source_file"].iloc[aside].astype(str).value_counts().items():
        if gate.systemic(int(n), int(per_file[name]), gate.max_set_aside_share):
            systemic.append(
                f"{n:,} of the {per_file[name]:,} rows of {name} would be set aside "
                f"(> {gate.max_set_aside_share:.1%} and > {gate.min_bad_rows}: the QualityGate)"
            )
    if systemic:
        return Screened(dataset, frame, [], [], proposal.errata, tuple(systemic), gate, proposal.result)
    kept, set_aside, removed = _apply(frame, proposal)
    return Screened(dataset, kept, set_aside, removed, proposal.errata, (), gate, proposal.result)


def _apply(frame: pd.DataFrame, proposal: Proposal) -> tuple[pd.DataFrame, list[Rejection], list[Rejection]]:
    """Each failing row set aside (or only its wrong optional value removed) with its reasons. Of a duplicate only
    the later copies fail, so the first is kept (an accepted erratum names rows by key: it sets aside all copies)."""
    frame = frame.copy()
    aside: list[int] = []
    set_aside: list[Rejection] = []
    removed: list[Rejection] = []
    for p, found in sorted(proposal.row_reasons.items()):
        at = (str(frame.at[p, "source_file"]), int(frame.at[p, "source_line"]))
        if any(column is None for column, _ in found):
            aside.append(p)
            why = "; ".join(dict.fromkeys(r for _, r in found))
            record = ",".join(str(v) for v in frame.loc[p].drop(["source_file", "source_line"]).tolist())
            set_aside.append(Rejection(at[0], at[1], record, f"data check: {why}"))
            continue
        for column, why in found:
            removed.append(Rejection(at[0], at[1], f"{column}={frame.at[p, column]}", f"value removed: {why}"))
            frame.at[p, column] = None
    return frame.drop(index=aside).reset_index(drop=True), set_aside, removed
