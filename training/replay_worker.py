"""The preparing process of a parallel in-play replay (``training.inplay_backtest._prepared_in_parallel``).

Reads ``(rows, config, models, chunk)`` pickled on stdin; writes the prepared matches (``prepared_matches``, with the
models' probabilities worked out ahead) to stdout as pickled lists of ``chunk`` items (the first few smaller, so
the replay starts sooner), then ``None`` — or the error, pickled, and exits 1. Anything else that would
print goes to stderr, so stdout carries only the pickles.
"""

from __future__ import annotations

import os
import pickle
import queue
import sys
import threading

FIRST_CHUNK = 4
"""Matches in the first chunk; each next chunk is twice as large, up to the replay's chunk size."""
AHEAD = 16
"""Chunks prepared and not yet read by the replay, at most (the replay reads a chunk when it needs one)."""


def main() -> int:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints cannot corrupt the stream
    # pickled chunks wait here while the replay is busy: this process keeps preparing, up to AHEAD chunks ahead
    ready: queue.Queue[bytes | None] = queue.Queue(maxsize=AHEAD)
    gone = threading.Event()  # the replaying process stopped reading

    def send() -> None:
        while (blob := ready.get()) is not None:
            if gone.is_set():
                continue
            try:
                out.write(blob)
                out.flush()
            except (BrokenPipeError, OSError):
                gone.set()

    sender = threading.Thread(target=send, name="send", daemon=True)
    sender.start()

    def put(obj: object) -> None:
        ready.put(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))

    try:
        from training.inplay_backtest import prepared_matches

        rows, config, models, size = pickle.load(sys.stdin.buffer)
        chunk: list = []
        sent = 0
        for item in prepared_matches(rows, config, models=models):
            chunk.append(item)
            if len(chunk) >= min(size, FIRST_CHUNK * 2**sent):
                put(chunk)
                chunk = []
                sent += 1
                if gone.is_set():
                    return 1
        put(chunk)
        put(None)
        code = 0
    except BaseException as exc:  # noqa: BLE001 - shown by the replaying process, which raises it
        put(RuntimeError(f"preparing the in-play replay failed: {type(exc).__name__}: {exc}"))
        code = 1
    ready.put(None)
    sender.join()
    return 1 if gone.is_set() else code


if __name__ == "__main__":
    raise SystemExit(main())
