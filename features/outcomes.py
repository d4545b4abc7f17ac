"""How a match ended and how it settles — the rules, without the tables: read from a Sackmann-style
score string ("6-4 3-1 RET", "W/O"), and the exchange's rule for when a match bet stands. The clean
match table (``features.matches``), settlement (``betting.settlement``) and the live engine all use
these; this module imports nothing heavy, so the engine starts fast.
"""

from __future__ import annotations

import re

_SET = re.compile(r"^(\d+)-(\d+)(?:\((\d+)\))?$")
_MATCH_TIEBREAK = re.compile(r"^\[(\d+)-(\d+)\]$")

OUTCOMES = ("completed", "retired", "defaulted", "walkover", "unfinished", "unknown")


def parse_outcome(score: str | None) -> tuple[str, int]:
    """How a match ended, and how many sets were completed, read from a Sackmann score string."""
    if score is None or not str(score).strip():
        return "unknown", 0
    text = str(score).strip()
    upper = text.upper()
    if "W/O" in upper or upper in ("WALKOVER", "WO"):
        return "walkover", 0
    if "RET" in upper:
        outcome = "retired"
    elif "DEF" in upper or "DEFAULT" in upper:
        outcome = "defaulted"
    elif "UNFINISHED" in upper or "ABANDONED" in upper or "UNP" in upper:
        outcome = "unfinished"
    elif upper == "UNK":
        return "unknown", 0
    else:
        outcome = "completed"
    completed = 0
    for token in text.split():
        m = _SET.match(token)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            hi, lo = max(a, b), min(a, b)
            if m.group(3) is not None or (hi >= 6 and hi - lo >= 2) or (hi == 7 and lo == 6):
                completed += 1
            continue
        if _MATCH_TIEBREAK.match(token):
            completed += 1
    return outcome, completed


def settles_with_winner(outcome: str, sets_completed: int) -> bool:
    """Exchange settlement rule: a match bet stands if the match was completed, or a player retired
    (or was defaulted) after at least one full set; the player who advanced wins. Otherwise void."""
    if outcome == "completed":
        return True
    return outcome in ("retired", "defaulted", "unfinished") and sets_completed >= 1
