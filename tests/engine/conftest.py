"""A real ``bentoml serve`` of the prediction service for the engine tests (one per session)."""

import pytest

from tests.services import prediction_service as serve


@pytest.fixture(scope="session")
def prediction_service(tmp_path_factory):
    """URL of a running prediction service (no champion needed for /predict_live with a prior)."""
    with serve(tmp_path_factory.mktemp("service-home")) as url:
        yield url
