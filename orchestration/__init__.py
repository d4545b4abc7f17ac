"""orchestration: Dagster only — assets, asset checks, jobs, schedules, sensors and resources, thin wrappers
that call the packages below. It may import every package; none imports it."""
