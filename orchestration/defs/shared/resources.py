"""Resources every domain uses: where the data and databases are, MLflow, and the parquet warehouse."""

import pickle
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
from sqlalchemy.engine import Engine

from courtside.settings import Settings
from feeds.sources import DataSource, data_source
from training.windows import SETTINGS, PipelineWindows, WindowSettings


class CourtsideResource(dg.ConfigurableResource):
    """The data source and the application database (quarantine, later the live event log)."""

    data_dir: str
    database_url: str
    reports_dir: str
    """Where human-readable reports (evaluation tables and plots) are written."""
    prediction_url: str = "http://127.0.0.1:3001"
    """The BentoML prediction service (pre-match value scans call its ``/predict``)."""
    bankroll: float = 1000.0
    """Starting bankroll of the paper-trading session."""
    source_globs: dict[str, list[str]] = {}
    """File globs replacing a dataset's defaults (``Settings.source_globs``)."""
    errata_file: str = ""
    """``COURTSIDE_ERRATA`` (empty: ``<home>/errata.csv`` when it exists, else the packaged errata)."""
    home: str = ""
    proposed_errata_dir: str = ""
    """Where the ingest writes the errata it proposes (``Settings.proposed_errata_dir``)."""

    def source(self) -> DataSource:
        """Where historical files are read from (a folder, or the upstream URLs)."""
        return data_source(self.data_dir, self.source_globs)

    def errata_path(self) -> Path:
        """The errata in force now (a file accepted since the definitions loaded counts)."""
        from feeds.historical import errata_path

        return errata_path(self.errata_file, Path(self.home) if self.home else None)

    @cached_property
    def engine(self) -> Engine:
        """The application database, migrated to the newest schema."""
        from storage.db import make_engine, migrate

        engine = make_engine(self.database_url)
        migrate(engine)
        return engine


class WindowsResource(dg.ConfigurableResource):
    """The season windows of every asset (``training.windows``): the settings given by the environment, a
    windows file or the command line when the definitions load (the launchpad shows and overrides them under
    ``resources: windows``); an empty value is derived by the one rule of ``training.windows``."""

    train: str = ""
    validation: str = ""
    test: str = ""
    walkforward_from: str = ""
    inplay_train: str = ""
    inplay_validation: str = ""
    inplay_test: str = ""
    replay: str = ""

    @classmethod
    def of(cls, settings: WindowSettings) -> "WindowsResource":
        return cls(**settings.given())

    def settings(self) -> WindowSettings:
        return WindowSettings.from_mapping({k: getattr(self, k) for k in SETTINGS}, "resources.windows")

    def get(self) -> PipelineWindows:
        """Every window, set or derived, validated (``training.windows.WindowsError`` otherwise)."""
        return self.settings().resolve()


class MlflowResource(dg.ConfigurableResource):
    """MLflow tracking and registry."""

    tracking_uri: str
    artifact_root: str
    """Where new experiments keep their artifacts, a URI (``Settings.mlflow_artifact_root``: ``file:///...`` by
    default, ``s3://bucket/prefix`` with ``COURTSIDE_ARTIFACT_ROOT``)."""
    ui_url: str = "http://localhost:5000"

    def configure(self, experiment: str) -> str:
        """Point MLflow at the store and make sure ``experiment`` exists; returns its id."""
        from training import tracking

        return tracking.configure(self.tracking_uri, self.artifact_root, experiment)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        """Link to a run in the MLflow UI."""
        return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


class WarehouseIOManager(dg.ConfigurableIOManager):
    """Asset values on disk: data frames as Parquet, anything else (fitted models) as pickle."""

    base_dir: str

    def _path(self, context: dg.OutputContext | dg.InputContext) -> Path:
        return Path(self.base_dir).joinpath(*context.asset_key.path)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        path = self._path(context)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(obj, pd.DataFrame):
            tmp = path.with_suffix(".parquet.tmp")
            obj.to_parquet(tmp, index=False)
            tmp.replace(path.with_suffix(".parquet"))  # atomic: a crash never leaves half a file
            path.with_suffix(".pickle").unlink(missing_ok=True)
        else:
            tmp = path.with_suffix(".pickle.tmp")
            with tmp.open("wb") as fh:
                pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
            tmp.replace(path.with_suffix(".pickle"))
            path.with_suffix(".parquet").unlink(missing_ok=True)

    def load_input(self, context: dg.InputContext) -> Any:
        path = self._path(context)
        if path.with_suffix(".parquet").exists():
            return pd.read_parquet(path.with_suffix(".parquet"))
        if path.with_suffix(".pickle").exists():
            with path.with_suffix(".pickle").open("rb") as fh:
                return pickle.load(fh)
        raise FileNotFoundError(
            f"{context.asset_key.to_user_string()} has not been materialized in {self.base_dir}; "
            "materialize it (or run the whole pipeline) first"
        )


def resources_from_settings(settings: Settings, windows: WindowSettings | None = None) -> dict[str, Any]:
    """The resource set for a given configuration (the embedded defaults unless overridden); the season windows
    from ``windows``, else from the environment (``WindowSettings.from_env``), validated here: bad windows stop
    the definitions from loading, before any run."""
    windows = WindowSettings.from_env() if windows is None else windows
    windows.resolve()
    return {
        "windows": WindowsResource.of(windows),
        "courtside": CourtsideResource(
            data_dir=settings.data_dir,
            database_url=settings.database_url,
            reports_dir=str(settings.home / "reports"),
            prediction_url=settings.prediction_url,
            bankroll=settings.bankroll,
            errata_file=settings.errata_file,
            source_globs=settings.source_globs(),
            home=str(settings.home),
            proposed_errata_dir=str(settings.proposed_errata_dir),
        ),
        "mlflow": MlflowResource(
            tracking_uri=settings.mlflow_tracking_uri, artifact_root=settings.mlflow_artifact_root
        ),
        "io_manager": WarehouseIOManager(base_dir=str(settings.warehouse_dir)),
    }
