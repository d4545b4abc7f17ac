"""The Klaassen-Magnus Markov chain of a tennis match: ``scalar`` (one state, exact, memoised; the
calibration to the pre-match probability and the serve-probability tracker) and ``vector`` (the same
chain for arrays of states with numpy, equal to the scalar one to 1e-12)."""
