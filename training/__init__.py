"""training: windows (by season), model fitting, calibration, metrics, evaluation against the market,
walk-forward, in-play models, backtests and MLflow tracking with the champion/challenger rule. May import the
core, feeds and MLflow; never Dagster or serving."""
