"""features: the tennis domain — scoring state machine and live match state, triggers, ratings (Elo),
pre-match feature rows as of a date, the Markov chain of a match, player identity. The core: imports no
framework (no dagster, bentoml, mlflow, sqlalchemy), nothing outside ``features``."""
