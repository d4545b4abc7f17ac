"""adapters: the outside world behind ports — ``adapters/api_tennis/`` (live scores), later ``adapters/betfair/``.
Each translates a vendor's protocol into the feed's and the core's records and nothing else; it may import
``features``, ``betting`` and ``feeds``, never ``serving``, ``orchestration`` or dagster."""
