"""serving: what runs and answers — the BentoML prediction service (``service``, ``predictor``), the live
engine process (``serving.engine``: the loop around ``betting.trading``), the control plane's live functions
(``control``) and the people-facing API, gateway and dashboard (``serving.api``). May import the core, feeds,
training's model loading and storage; never Dagster. Nothing outside ``serving/engine/`` imports the engine."""
