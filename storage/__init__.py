"""Application database: SQLAlchemy 2 models, engine/session factory, Alembic migrations.

- :mod:`storage.db` — ``make_engine``, ``session_factory``, ``migrate``, ``Database``
- :mod:`storage.models` — declarative models (``Base.metadata`` is what Alembic compares)
- :mod:`storage.quarantine` — records rejected by ingest or the live feed
- ``storage/migrations`` — Alembic revisions; new ones with ``python -m storage revision``

SQLite file by default, Postgres (``postgresql+psycopg://``) in production; same code for both.
Never imports dagster or bentoml.
"""
