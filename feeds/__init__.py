"""feeds: data in — historical sources (local folder or upstream URLs) with ingest and quarantine, and the
live feed (protocol, replay server, simulated market, resilient client, the feed's own order). May import the
core (``features``, ``betting``) and settings; never Dagster, serving or training."""
