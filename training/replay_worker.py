"""The preparing process of a parallel in-play replay (``training.backtest._prepared_in_parallel``).

Reads ``(rows, config, models, chunk)`` pickled on stdin; writes the prepared matches (``prepared_matches``, with the
models' probabilities worked out ahead) to stdout as pickled lists of ``chunk`` items (the first few smaller, so
the replay starts sooner), then ``None`` — or the error, pickled, and exits 1. Anything else that would
print goes to stderr, so stdout carries only the pickles.
"""

from __future__ import annotations

import os
import pickle
import sys

FIRST_CHUNK = 4
"""Matches in the first chunk; each next chunk is twice as large, up to the replay's chunk size."""


def main() -> int:
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints cannot corrupt the stream
    try:
        from training.backtest import prepared_matches

        rows, config, models, size = pickle.load(sys.stdin.buffer)
        chunk: list = []
        sent = 0
        for item in prepared_matches(rows, config, models=models):
            chunk.append(item)
            if len(chunk) >= min(size, FIRST_CHUNK * 2**sent):
                pickle.dump(chunk, out, protocol=pickle.HIGHEST_PROTOCOL)
                out.flush()
                chunk = []
                sent += 1
        pickle.dump(chunk, out, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump(None, out)
        out.flush()
        return 0
    except BrokenPipeError:  # the replaying process stopped reading (it failed or was stopped)
        return 1
    except BaseException as exc:  # noqa: BLE001 - shown by the replaying process, which raises it
        pickle.dump(RuntimeError(f"preparing the in-play replay failed: {type(exc).__name__}: {exc}"), out)
        out.flush()
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
