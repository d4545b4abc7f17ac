"""orchestration: Dagster only — assets, asset checks, jobs, schedules, sensors and resources, thin wrappers
that call the packages below. It may import every package; none imports it."""

import os

# Before anything loads OpenMP (XGBoost, scikit-learn): idle OpenMP threads sleep instead of spinning. Two
# XGBoost threads with the other core busy (another step of the run, another job) spun at every barrier: a
# walk-forward refit took 37 s instead of 5 s on the loaded 2-core machine, with the same trees. Only processes
# that run the pipeline import this package (the services never do).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
