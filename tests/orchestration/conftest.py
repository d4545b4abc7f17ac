"""The whole pipeline on the real shared data with the application database on a real Postgres
server, run once per test session and shared by the pipeline and live-lane tests."""

import dagster as dg
import pytest

from courtside.settings import Settings
from orchestration.definitions import build_definitions
from tests.real_data import data_dir


@pytest.fixture(scope="session")
def runs(tmp_path_factory, postgres_url):
    from sqlalchemy import create_engine, text

    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS courtside_pipeline_test"))
        conn.execute(text("CREATE DATABASE courtside_pipeline_test"))
    admin.dispose()
    db_url = postgres_url.rsplit("/", 1)[0] + "/courtside_pipeline_test"
    home = tmp_path_factory.mktemp("home")
    settings = Settings.from_env(
        {"COURTSIDE_HOME": str(home), "COURTSIDE_DATA_DIR": str(data_dir()), "COURTSIDE_DATABASE_URL": db_url}
    )
    defs = build_definitions(settings)
    job = defs.resolve_job_def("courtside_pipeline")
    with dg.DagsterInstance.ephemeral() as instance:
        first = job.execute_in_process(instance=instance, raise_on_error=False)
        second = job.execute_in_process(instance=instance, raise_on_error=False)
        yield settings, defs, first, second
