"""courtside: the product's entry points — settings from the environment, the ``courtside`` command (``up``,
``pipeline``, ``bench``), ``make up``'s supervisor, exposure rules and the Dagster gatekeeper. It composes
the other packages; none of the core imports it except for settings."""
