"""What ``courtside up`` starts and where it listens: every listener on 127.0.0.1 by default; exposing them
(or asking for protection) puts MLflow behind its basic-auth app, Dagster behind the authenticating proxy,
the prediction service on MLflow's read-only user — and is refused (exit 2) until each is protected."""

from __future__ import annotations

import configparser
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from courtside import cli
from courtside.exposure import (
    Ports,
    child_environment,
    exposure_problems,
    listeners,
    mlflow_allowed_hosts,
)
from courtside.settings import Settings, is_loopback
from tests.services import ROOT

CREDENTIALS = {
    "COURTSIDE_MLFLOW_ADMIN_PASSWORD": "admin-password-1f9e",
    "COURTSIDE_MLFLOW_READER_PASSWORD": "reader-password-77c2",
    "COURTSIDE_DAGSTER_PASSWORD": "dagster-password-0b3a",
}
TOKEN = "operator-token-5a1e9c0d2b"


def settings_for(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"COURTSIDE_HOME": str(tmp_path), **env})


def specs(settings: Settings) -> dict[str, cli.ServiceSpec]:
    ports = cli.service_ports(settings)
    return {s.name: s for s in cli.control_plane_specs(settings, ports) + cli.live_specs(settings, ports)}


def bind_addresses(command: tuple[str, ...]) -> list[str]:
    return [command[i + 1] for i, arg in enumerate(command) if arg in ("--host", "-h")]


def test_every_listener_of_make_up_binds_loopback_by_default(tmp_path):
    services = specs(settings_for(tmp_path))
    assert set(services) == {"dagster", "mlflow", "prediction-service", "feed-replay", "engine", "live-api"}
    for name in ("dagster", "mlflow", "prediction-service", "feed-replay", "live-api"):
        assert bind_addresses(services[name].command) == ["127.0.0.1"], services[name].command
    for spec in services.values():
        assert "0.0.0.0" not in " ".join(spec.command)
    mlflow = services["mlflow"].command
    assert "--allowed-hosts" not in mlflow  # MLflow's own host check: loopback names and private IPs
    assert "--app-name" not in mlflow and services["mlflow"].env == {}
    assert services["dagster"].command[-1] == "3000"
    assert services["prediction-service"].env == {}  # loads models straight from the tracking store
    assert services["engine"].pauses_betting and services["prediction-service"].pauses_betting
    assert not services["feed-replay"].pauses_betting
    assert all(
        lst.protection == "loopback only"
        for lst in listeners(settings_for(tmp_path), Ports())
        if not lst.name.startswith("Live dashboard")
    )


def test_exposed_mlflow_runs_its_basic_auth_app_and_dagster_stays_on_loopback_behind_the_proxy(tmp_path):
    settings = settings_for(
        tmp_path,
        COURTSIDE_BIND_HOST="127.0.0.2",
        COURTSIDE_PROTECT="1",
        COURTSIDE_ALLOWED_HOSTS="courtside.team.example",
        **CREDENTIALS,
    )
    assert settings.requires_auth and not settings.exposed
    services = specs(settings)
    assert bind_addresses(services["dagster"].command) == ["127.0.0.1"]
    assert services["dagster"].command[-1] == "3100"
    proxy = services["dagster-proxy"].command
    assert proxy[1:3] == ("-m", "courtside.gatekeeper") and bind_addresses(proxy) == ["127.0.0.2"]
    assert proxy[proxy.index("--port") + 1] == "3000" and proxy[-1] == "http://127.0.0.1:3100"
    assert services["dagster-proxy"].env["COURTSIDE_DAGSTER_PASSWORD"] == CREDENTIALS["COURTSIDE_DAGSTER_PASSWORD"]
    for name in ("mlflow", "prediction-service", "feed-replay", "live-api"):
        assert bind_addresses(services[name].command) == ["127.0.0.2"]

    mlflow = services["mlflow"]
    assert mlflow.command[mlflow.command.index("--app-name") + 1] == "basic-auth"
    allowed = mlflow.command[mlflow.command.index("--allowed-hosts") + 1].split(",")
    assert "courtside.team.example:*" in allowed and "127.0.0.2:*" in allowed and "*" not in allowed
    assert mlflow.env["MLFLOW_AUTH_ADMIN_PASSWORD"] == CREDENTIALS["COURTSIDE_MLFLOW_ADMIN_PASSWORD"]
    assert len(mlflow.env["MLFLOW_FLASK_SERVER_SECRET_KEY"]) >= 32
    ini = Path(mlflow.env["MLFLOW_AUTH_CONFIG_PATH"])
    assert ini.parent == tmp_path / "mlflow" and stat.S_IMODE(ini.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "mlflow" / "flask-secret-key").stat().st_mode) == 0o600
    config = configparser.ConfigParser()
    config.read(ini)
    assert config["mlflow"]["default_permission"] == "READ"
    assert config["mlflow"]["database_uri"] == f"sqlite:///{tmp_path / 'mlflow' / 'basic_auth.db'}"
    assert config["mlflow"]["admin_username"] == "courtside-admin"
    assert CREDENTIALS["COURTSIDE_MLFLOW_ADMIN_PASSWORD"] not in ini.read_text()

    # the prediction service loads the champions through the server, as the read-only user
    assert services["prediction-service"].env == {
        "MLFLOW_TRACKING_URI": f"http://127.0.0.2:{cli.MLFLOW_PORT}",
        "MLFLOW_TRACKING_USERNAME": "courtside-reader",
        "MLFLOW_TRACKING_PASSWORD": CREDENTIALS["COURTSIDE_MLFLOW_READER_PASSWORD"],
    }
    engine = services["engine"].command
    assert engine[engine.index("--feed-url") + 1].startswith("ws://127.0.0.2:")
    assert engine[engine.index("--prediction-url") + 1].startswith("http://127.0.0.2:")
    assert services["live-api"].env["COURTSIDE_DAGSTER_URL"] == "http://127.0.0.1:3100"
    assert services["engine"].env == {}
    printed = {lst.name: lst for lst in listeners(settings, Ports())}
    assert printed["Dagster UI"].url == "http://127.0.0.2:3000" and "proxy" in printed["Dagster UI"].protection
    assert "basic-auth" in printed["MLflow UI"].protection
    assert "bearer token" in printed["Live dashboard + API"].protection


def test_exposure_is_refused_until_every_service_is_protected(tmp_path):
    ports = Ports()
    assert exposure_problems(settings_for(tmp_path), None, ports) == []  # loopback: nothing to protect
    bare = settings_for(tmp_path, COURTSIDE_BIND_HOST="0.0.0.0")
    found = " ".join(exposure_problems(bare, None, ports))
    for name in (
        "operator token",
        "COURTSIDE_MLFLOW_ADMIN_PASSWORD",
        "COURTSIDE_MLFLOW_READER_PASSWORD",
        "COURTSIDE_DAGSTER_PASSWORD",
    ):
        assert name in found
    full = settings_for(tmp_path, COURTSIDE_BIND_HOST="0.0.0.0", **CREDENTIALS)
    assert exposure_problems(full, TOKEN, ports) == []
    weak = settings_for(
        tmp_path,
        COURTSIDE_BIND_HOST="0.0.0.0",
        **{
            **CREDENTIALS,
            "COURTSIDE_MLFLOW_ADMIN_PASSWORD": "password1234",
            "COURTSIDE_MLFLOW_READER_PASSWORD": "short",
        },
    )
    found = exposure_problems(weak, TOKEN, ports)
    assert any("old default" in p for p in found) and any("at least 12" in p for p in found)
    same = settings_for(
        tmp_path,
        COURTSIDE_BIND_HOST="0.0.0.0",
        **{**CREDENTIALS, "COURTSIDE_MLFLOW_READER_PASSWORD": CREDENTIALS["COURTSIDE_MLFLOW_ADMIN_PASSWORD"]},
    )
    assert any("must differ" in p for p in exposure_problems(same, TOKEN, ports))
    bearer_only = settings_for(
        tmp_path,
        COURTSIDE_BIND_HOST="0.0.0.0",
        **{**CREDENTIALS, "COURTSIDE_DAGSTER_PASSWORD": "", "COURTSIDE_DAGSTER_TOKEN": "dagster-bearer-token-4e2f"},
    )
    assert exposure_problems(bearer_only, TOKEN, ports) == []


def test_courtside_up_refuses_to_start_unprotected_and_says_why(tmp_path):
    env = {k: v for k, v in child_environment().items() if not k.startswith(("COURTSIDE_", "MLFLOW_", "DAGSTER_"))}
    env.update(
        {
            "COURTSIDE_HOME": str(tmp_path),
            "COURTSIDE_BIND_HOST": "127.0.0.2",
            "COURTSIDE_PROTECT": "1",
            "COURTSIDE_MLFLOW_ADMIN_PASSWORD": "admin-password-1f9e",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "courtside.cli", "up"],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 2, out + err
    assert "refusing to start" in err and "COURTSIDE_MLFLOW_READER_PASSWORD" in err
    assert "COURTSIDE_DAGSTER_PASSWORD" in err and "COURTSIDE_MLFLOW_ADMIN_PASSWORD is" not in err
    assert "admin-password-1f9e" not in out + err
    assert not (tmp_path / "logs").exists()  # nothing was started
    assert stat.S_IMODE((tmp_path / "api-token").stat().st_mode) == 0o600  # the operator token exists


def test_services_inherit_no_secret_they_do_not_need(tmp_path, monkeypatch):
    for var, value in {**CREDENTIALS, "COURTSIDE_API_TOKEN": TOKEN, "COURTSIDE_BIND_HOST": "0.0.0.0"}.items():
        monkeypatch.setenv(var, value)
    inherited = child_environment()
    assert not set(CREDENTIALS) & set(inherited) and "COURTSIDE_API_TOKEN" not in inherited
    services = specs(settings_for(tmp_path, **CREDENTIALS, COURTSIDE_BIND_HOST="0.0.0.0"))
    assert services["live-api"].env["COURTSIDE_API_TOKEN"] == TOKEN
    for name, spec in services.items():
        if name != "live-api":
            assert TOKEN not in spec.env.values()
        if name != "mlflow":
            assert CREDENTIALS["COURTSIDE_MLFLOW_ADMIN_PASSWORD"] not in spec.env.values()
        assert CREDENTIALS["COURTSIDE_MLFLOW_ADMIN_PASSWORD"] not in repr(spec)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("::", False),
        ("courtside.example", False),
    ],
)
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback
    assert Settings.from_env({"COURTSIDE_BIND_HOST": host}).requires_auth is not loopback


def test_mlflow_host_check_accepts_the_local_address_and_the_named_hosts_only(tmp_path):
    assert mlflow_allowed_hosts(settings_for(tmp_path)) is None
    unnamed = mlflow_allowed_hosts(settings_for(tmp_path, COURTSIDE_BIND_HOST="127.0.0.2", COURTSIDE_PROTECT="1"))
    assert {"127.0.0.2:*", "localhost:*", "10.*", "192.168.*", "172.31.*"} <= set(unnamed.split(","))
    assert "*" not in unnamed.split(",")
    named = mlflow_allowed_hosts(
        settings_for(tmp_path, COURTSIDE_BIND_HOST="0.0.0.0", COURTSIDE_ALLOWED_HOSTS="ml.example, 10.0.0.5:5000")
    ).split(",")
    assert {"ml.example", "ml.example:*", "10.0.0.5:5000", "localhost:*", "127.0.0.1:*"} <= set(named)
    assert "10.0.0.5:5000:*" not in named


def test_the_cluster_profiles_listeners_bind_loopback_by_default_too(tmp_path):
    """``courtside up --profile cluster`` adds listeners (each engine worker's metrics; the API's replicas share its
    ports): on the bind address like every other, 127.0.0.1 by default (tests/ops/test_up_cluster.py has the rest)."""
    from courtside.cluster import ClusterCounts, ClusterPorts, scale_of

    scale = scale_of(ClusterCounts(), ClusterPorts())
    for host, settings in (
        ("127.0.0.1", settings_for(tmp_path)),
        (
            "127.0.0.2",
            settings_for(tmp_path, **{"COURTSIDE_BIND_HOST": "127.0.0.2", "COURTSIDE_PROTECT": "1", **CREDENTIALS}),
        ),
    ):
        ports = cli.service_ports(settings)
        services = {
            s.name: s for s in cli.control_plane_specs(settings, ports, scale) + cli.live_specs(settings, ports, scale)
        }
        assert {"engine-w1", "engine-w2"} <= set(services) and "engine" not in services
        for worker in scale.engine_workers:
            assert services[f"engine-{worker}"].env["COURTSIDE_ENGINE_METRICS_HOST"] == host
        for name in ("mlflow", "prediction-service", "feed-replay", "live-api"):
            assert bind_addresses(services[name].command) == [host], services[name].command
        assert bind_addresses(services["dagster"].command) == ["127.0.0.1"]
