"""The people-facing live API, WebSocket gateway and dashboard (``python -m serving.api``)."""
