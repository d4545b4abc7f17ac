"""Progress of long steps: a log line every 10% in Dagster, and a bar when run from a terminal."""

import sys
import time
from collections.abc import Callable

import dagster as dg


def reporter(context: dg.AssetExecutionContext, label: str) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback for the core functions of ``features``/``training``."""
    bar = None
    state = {"decile": -1, "start": time.monotonic()}
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(desc=label, unit="row", leave=False)

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.refresh()
            if done >= total:
                bar.close()
                bar = None
        decile = 10 * done // total if total else 10
        if decile > state["decile"]:
            state["decile"] = decile
            elapsed = time.monotonic() - state["start"]
            context.log.info(f"{label}: {10 * decile}% ({done:,}/{total:,}) after {elapsed:.1f} s")

    return progress
