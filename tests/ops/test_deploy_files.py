"""The deployment files (issue 14) are valid and name only what exists, checked offline (no container runtime, no
network: nothing is downloaded).

- ``deploy/compose.yaml`` against the Compose specification's JSON schema that check-jsonschema vendors
  (``--builtin-schema vendor.compose-spec``).
- ``deploy/k8s/*.yaml``, every document, against the Kubernetes 1.33 schemas (strict: no unknown field) bundled in
  ``deploy/schemas/`` (check-jsonschema vendors none for Kubernetes: ``deploy/schemas/bundle_kubernetes.py``).
- Both schema checks are shown to catch a misspelt field (so they are not vacuous).
- Every command names a module of the project (``python -m serving.engine``: its ``__main__`` exists and defines
  each option used) or an installed program whose options include those used (mlflow, dagster-webserver,
  dagster-daemon, the Bento's ``bentoml serve``); every file mounted or copied exists.
- Every environment variable set for a Courtside process is read by the project's code, by a configuration file
  in ``deploy/`` (``env: NAME``), or by the named module of the third-party program the process runs.
- Prometheus' configurations parse (and pass ``promtool check config`` where promtool is installed), and each
  target is a service and port the compose file (or a headless Service of the manifests) has; every engine
  worker, every API replica and every prediction replica is scraped.
- ``bentofile.yaml``: its service path imports and is the Bento's service, its include list holds exactly the
  code that service imports (and what its models unpickle from), its pinned requirements are uv.lock's and cover
  every package that code imports. The build itself is tests/serving/test_bento_build.py (slow).
- The image's Dagster instance (dagster-postgres.yaml) validates against Dagster's own schema, and the stores follow
  the production storage profile (``storage.db``: Dagster and MLflow in schemas of the application database).
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
K8S_SCHEMA = DEPLOY / "schemas" / "kubernetes-1.33-strict.json"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
BENTOFILE = ROOT / "bentofile.yaml"
COURTSIDE_IMAGES = {"courtside:latest", "courtside"}
"""The image built from deploy/Dockerfile (compose, manifests)."""
PREDICTION_IMAGES = {"${COURTSIDE_PREDICTION_IMAGE:-courtside-prediction:latest}", "courtside-prediction"}
"""The Bento's image (``bentoml containerize``): its entrypoint runs ``bentoml serve <args> <the bento>``."""
PACKAGES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"][
    "packages"
]
"""The project's own packages."""
SERVICE_MODULES = ("training.models", "training.inplay_models")
"""Modules a champion may be unpickled from (cloudpickle refers to its classes by module): in the Bento too."""

THIRD_PARTY_ENV = {
    "MLFLOW_BACKEND_STORE_URI": "mlflow.cli",
    "MLFLOW_DEFAULT_ARTIFACT_ROOT": "mlflow.cli",
    "MLFLOW_SERVER_ALLOWED_HOSTS": "mlflow.environment_variables",
}
"""Variables read by the third-party program a container runs (mlflow server, Dagster): the module that reads it
(its source must name it)."""
IMAGE_ENV = {"postgres": {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}}
"""Variables of third-party images (documented by the image; nothing to check offline)."""

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str) -> str:
    """A compose value with ``${VAR:-default}`` as its default, ``${VAR:?message}`` (required) as ``required``."""
    return _INTERPOLATION.sub(lambda m: m.group(3) if m.group(2) in (":-", "-") else "required", value)


def check_jsonschema(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def load_script(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def manifests() -> list[tuple[str, dict]]:
    """(file name, document) of every Kubernetes document under deploy/k8s/ (not the kustomization)."""
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def exposed(service: dict) -> set[int]:
    """Container ports a compose service has (``expose`` and the container side of ``ports``)."""
    ports = {int(p) for p in service.get("expose", [])}
    for spec in service.get("ports", []):
        ports.add(int(interpolate(str(spec)).rsplit(":", 1)[-1].split("/")[0]))
    return ports


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: str(v) for k, v in env.items()}


def ours(service: dict) -> bool:
    return service.get("image") in COURTSIDE_IMAGES | PREDICTION_IMAGES


# --- schemas ---------------------------------------------------------------------------------------------------


def test_the_compose_file_follows_the_compose_specification():
    vendored = Path(importlib.util.find_spec("check_jsonschema").origin).parent / "builtin_schemas/vendor"
    assert (vendored / "compose-spec.json").is_file()  # the schema comes with the package: nothing downloaded
    result = check_jsonschema("--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert result.returncode == 0, result.stdout + result.stderr


def _documents_as_files(docs: list[tuple[str, dict]], folder: Path) -> list[str]:
    files = []
    for i, (name, doc) in enumerate(docs):
        path = folder / f"{i:02d}-{Path(name).stem}-{doc.get('kind')}-{doc['metadata']['name']}.json"
        path.write_text(json.dumps(doc))
        files.append(str(path))
    return files


def test_the_kubernetes_manifests_follow_the_kubernetes_schemas(manifests, tmp_path):
    bundler = load_script(DEPLOY / "schemas" / "bundle_kubernetes.py")
    schema = json.loads(K8S_SCHEMA.read_text())
    bundled = {(b["properties"]["apiVersion"]["const"], b["properties"]["kind"]["const"]) for b in schema["anyOf"]}
    assert bundled == set(bundler.KINDS), "deploy/schemas/ is out of date: run deploy/schemas/bundle_kubernetes.py"
    assert {(d["apiVersion"], d["kind"]) for _, d in manifests} <= bundled
    result = check_jsonschema("--schemafile", str(K8S_SCHEMA), *_documents_as_files(manifests, tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_checks_catch_a_misspelt_field(compose, manifests, tmp_path):
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["prediction"]["enviroment"] = broken["services"]["prediction"].pop("environment")
    (tmp_path / "compose.yaml").write_text(yaml.safe_dump(broken))
    result = check_jsonschema("--builtin-schema", "vendor.compose-spec", str(tmp_path / "compose.yaml"))
    assert result.returncode == 1 and "enviroment" in result.stdout, result.stdout + result.stderr
    deployment = next(d for _, d in manifests if d["kind"] == "Deployment")
    spec = json.loads(json.dumps(deployment))
    spec["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    spec["spec"]["replicas"] = "two"
    files = _documents_as_files([("broken.yaml", spec)], tmp_path)
    result = check_jsonschema("--schemafile", str(K8S_SCHEMA), *files)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "imagePullPolcy" in result.stdout and "'two'" in result.stdout, result.stdout


def test_the_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


# --- what the files name ---------------------------------------------------------------------------------------


def test_every_file_the_compose_file_mounts_or_builds_from_exists(compose):
    for name, service in compose["services"].items():
        build = service.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            assert context == ROOT, name
            assert (context / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = interpolate(volume).split(":", 1)[0]
            if source.startswith("."):
                path = DEPLOY / source
                if "shared/data" in source:
                    continue  # the data folder of the host (COURTSIDE_DATA), not part of the repository
                assert path.exists(), f"{name}: {volume}"
            else:
                assert source in compose["volumes"], f"{name}: named volume {source}"


def test_every_variable_the_compose_file_asks_for_is_documented():
    asked = set(_INTERPOLATION.findall(COMPOSE.read_text()))
    example = (DEPLOY / "compose.env.example").read_text()
    documented = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", example, re.MULTILINE))
    assert {name for name, _, _ in asked} == documented


def test_the_image_copies_every_package_of_the_project():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    copied = []
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            copied += [word for word in line.split()[1:-1] if not word.startswith("--")]
    for source in copied:
        assert (ROOT / source).exists(), source
    assert set(PACKAGES) <= set(copied)
    assert "uv sync --frozen --no-dev" in dockerfile
    # the Dagster instance of the production storage profile, where `courtside` and the Dagster servers read it
    assert "COPY dagster.yaml dagster-postgres.yaml ./" in dockerfile
    assert "dagster-postgres.yaml /opt/dagster/home/dagster.yaml" in dockerfile


def test_the_stores_follow_the_production_storage_profile(compose):
    """Dagster's and MLflow's stores are the schemas ``storage.db`` names in the application database."""
    from storage.db import DAGSTER_SCHEMA, MLFLOW_SCHEMA, schema_url

    services = compose["services"]
    database = interpolate(environment(services["dagster-daemon"])["COURTSIDE_DATABASE_URL"])
    for name in ("dagster-webserver", "dagster-daemon", "dagster-celery-worker"):
        env = {k: interpolate(v) for k, v in environment(services[name]).items()}
        assert env["DAGSTER_PG_URL"] == schema_url(database, DAGSTER_SCHEMA, "psycopg2"), name
        assert env["COURTSIDE_EXECUTOR"] == "celery" and env["DAGSTER_HOME"] == "/opt/dagster/home", name
    backend = interpolate(environment(services["mlflow"])["MLFLOW_BACKEND_STORE_URI"])
    assert backend == schema_url(database, MLFLOW_SCHEMA, "psycopg")
    init = (DEPLOY / "postgres" / "init.sql").read_text()
    for schema in (DAGSTER_SCHEMA, MLFLOW_SCHEMA):
        assert f"CREATE SCHEMA IF NOT EXISTS {schema};" in init


def _module_main(module: str) -> Path:
    path = ROOT / module.replace(".", "/")
    main = path / "__main__.py" if path.is_dir() else path.with_suffix(".py")
    assert main.is_file(), f"python -m {module}: no {main.relative_to(ROOT)}"
    return main


def _options(args: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in args if a.startswith("-") and not re.fullmatch(r"-?\d+(\.\d+)?", a)]


def commands(compose: dict, manifests: list[tuple[str, dict]]) -> list[tuple[str, list[str]]]:
    """(where, command) of every Courtside container: compose services and manifests' containers of our images;
    the Bento's as ``bentoml serve <args>`` (its entrypoint)."""
    found = []
    for name, service in compose["services"].items():
        if service.get("image") in COURTSIDE_IMAGES:
            found.append((f"compose {name}", [str(a) for a in service["command"]]))
        elif service.get("image") in PREDICTION_IMAGES:
            found.append((f"compose {name}", ["bentoml", "serve", *map(str, service["command"])]))
    for file, doc in manifests:
        for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            if container["image"] in COURTSIDE_IMAGES:
                found.append((f"{file} {container['name']}", [str(a) for a in container["command"]]))
            elif container["image"] in PREDICTION_IMAGES:
                found.append((f"{file} {container['name']}", ["bentoml", "serve", *map(str, container["args"])]))
    return found


def test_every_python_module_a_container_runs_exists_with_its_options(compose, manifests):
    modules = set()
    for where, command in commands(compose, manifests):
        if command[0] != "python":
            continue
        assert command[1] == "-m", where
        source = _module_main(command[2]).read_text()
        for option in _options(command[3:]):
            assert f'"{option}"' in source, f"{where}: python -m {command[2]} has no option {option}"
        modules.add(command[2])
    assert {"serving.engine", "serving.api", "feeds.live", "courtside.cli"} <= modules


def test_every_program_a_container_runs_is_installed_with_its_options(compose, manifests, probe):
    programs = {}
    for where, command in commands(compose, manifests):
        if command[0] == "python":
            continue
        assert (Path(sys.executable).parent / command[0]).is_file(), f"{where}: {command[0]} is not installed"
        words = next(((command[0], *command[1:i]) for i, a in enumerate(command) if a.startswith("-")), tuple(command))
        assert " ".join(words) in probe["cli_options"], f"{where}: {' '.join(words)} (add it to PROGRAMS)"
        for option in _options(command[len(words) :]):
            assert option in probe["cli_options"][" ".join(words)], f"{where}: {' '.join(words)} has no {option}"
        programs[" ".join(words)] = where
        if "-m" in command:  # the Dagster code location
            _module_main(command[command.index("-m") + 1])
    assert {"mlflow server", "bentoml serve", "dagster-webserver", "dagster-daemon run"} <= set(programs)


def _read_by_code() -> str:
    return "\n".join(p.read_text() for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def _read_by_deploy_config() -> set[str]:
    """Variables the configuration files read (``env: NAME``): the Dagster instances, what deploy/ holds."""
    names = set()
    for path in [*ROOT.glob("dagster*.yaml"), *DEPLOY.rglob("*.yaml")]:
        names |= set(re.findall(r"env:\s*([A-Z0-9_]+)", path.read_text()))
    return names


def _unread(names: set[str], code: str, configs: set[str], image: str | None = None) -> list[str]:
    """The variables of ``names`` that nothing reads."""
    unread = []
    for name in sorted(names):
        if name in configs or name in IMAGE_ENV.get(image or "", set()):
            continue
        if name in THIRD_PARTY_ENV:
            spec = importlib.util.find_spec(THIRD_PARTY_ENV[name])
            if not (spec and spec.origin and name in Path(spec.origin).read_text()):
                unread.append(name)
        elif not re.search(rf"[\"']{name}[\"']", code):
            unread.append(name)
    return unread


def test_every_variable_set_for_a_process_is_read_by_it(compose, manifests):
    code, configs = _read_by_code(), _read_by_deploy_config()
    unread = {}
    for name, service in compose["services"].items():
        image = str(service.get("image", "")).split(":")[0]
        if ours(service) or image in IMAGE_ENV:
            unread[f"compose {name}"] = _unread(set(environment(service)), code, configs, image)
    config_maps = {d["metadata"]["name"]: d["data"] for _, d in manifests if d["kind"] == "ConfigMap"}
    for file, doc in manifests:
        for container in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            if container["image"] not in COURTSIDE_IMAGES | PREDICTION_IMAGES:
                continue
            names = {e["name"] for e in container.get("env", [])}
            for source in container.get("envFrom", []):
                names |= set(config_maps[source["configMapRef"]["name"]])
            unread[f"{file} {container['name']}"] = _unread(names, code, configs)
    unread = {where: names for where, names in unread.items() if names}
    assert not unread, f"set but read by no code of the project: {unread}"


def test_the_engine_workers_are_numbered_0_to_n_minus_1(compose, manifests):
    engines = {n: environment(s) for n, s in compose["services"].items() if n.startswith("engine-")}
    assert len(engines) >= 2
    assert sorted(int(e["COURTSIDE_ENGINE_WORKER"]) for e in engines.values()) == list(range(len(engines)))
    assert {e["COURTSIDE_ENGINE_WORKERS"] for e in engines.values()} == {str(len(engines))}
    assert all(n == f"engine-{e['COURTSIDE_ENGINE_WORKER']}" for n, e in engines.items())
    (statefulset,) = [d for _, d in manifests if d["kind"] == "StatefulSet"]
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["COURTSIDE_ENGINE_WORKERS"]["value"] == str(statefulset["spec"]["replicas"])
    assert env["COURTSIDE_ENGINE_WORKER"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )


def test_the_load_balancer_sends_to_services_and_ports_that_exist(compose):
    conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    upstreams = re.findall(r"set \$\w+ http://([\w-]+):(\d+);", conf)
    assert {host for host, _ in upstreams} == {"api", "prediction"}
    for host, port in upstreams:
        assert int(port) in exposed(compose["services"][host]), f"{host}:{port}"
    listens = {int(p) for p in re.findall(r"listen (\d+);", conf)}
    assert listens == exposed(compose["services"]["lb"])
    for url in ("COURTSIDE_PREDICTION_URL",):
        for name, service in compose["services"].items():
            value = environment(service).get(url)
            if value:
                host, port = value.split("//", 1)[1].split(":")
                assert int(port) in exposed(compose["services"][host]), f"{name}: {value}"


# --- Prometheus --------------------------------------------------------------------------------------------------


def _targets(config: dict) -> dict[str, list[tuple[str, int]]]:
    """(host, port) of each job's targets: static ones, and each DNS name with its port."""
    jobs: dict[str, list[tuple[str, int]]] = {}
    for job in config["scrape_configs"]:
        targets = []
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                targets.append((host, int(port)))
        for dns in job.get("dns_sd_configs", []):
            assert dns.get("type", "SRV") == "A", job["job_name"]  # names of services, the port given
            targets += [(name, int(dns["port"])) for name in dns["names"]]
        # the live API's Prometheus text is /metrics/prometheus (its /metrics is the JSON report people read)
        expected = "/metrics/prometheus" if job["job_name"] == "api" else "/metrics"
        assert job.get("metrics_path", "/metrics") == expected, job["job_name"]
        jobs[job["job_name"]] = targets
    assert len(jobs) == len(config["scrape_configs"]), "job names repeat"
    return jobs


PROMETHEUS_KEYS = {"global", "scrape_configs", "rule_files", "alerting", "remote_write", "remote_read"}
JOB_KEYS = {"job_name", "metrics_path", "scheme", "scrape_interval", "scrape_timeout", "static_configs"}
JOB_KEYS |= {"dns_sd_configs", "relabel_configs", "honor_labels"}


def _promtool(path: Path) -> None:
    promtool = shutil.which("promtool")  # Debian's `prometheus` package has it; not required
    if promtool:
        result = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_every_replica_and_worker_of_the_compose_file(compose):
    config = yaml.safe_load(PROMETHEUS.read_text())
    assert set(config) <= PROMETHEUS_KEYS and all(set(j) <= JOB_KEYS for j in config["scrape_configs"])
    jobs = _targets(config)
    services = compose["services"]
    for job, targets in jobs.items():
        for host, port in targets:
            if host == "localhost":
                assert job == "prometheus" and port in exposed(services["prometheus"])
                continue
            assert host in services, f"{job}: {host} is no service of the compose file"
            assert port in exposed(services[host]), f"{job}: {host} exposes no port {port}"
    scraped = {host for targets in jobs.values() for host, _ in targets}
    assert {n for n in services if n.startswith("engine-")} <= scraped
    assert {"prediction", "api"} <= scraped  # every replica, through the service's DNS name
    engine_ports = {environment(s)["COURTSIDE_ENGINE_METRICS_PORT"] for n, s in services.items() if "engine-" in n}
    assert {str(p) for _, p in jobs["engine"]} == engine_ports
    _promtool(PROMETHEUS)


def test_prometheus_scrapes_every_pod_of_the_manifests(manifests, tmp_path):
    (config_map,) = [
        d for _, d in manifests if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "prometheus-config"
    ]
    config = yaml.safe_load(config_map["data"]["prometheus.yml"])
    headless = {
        d["metadata"]["name"]: {p["port"] for p in d["spec"]["ports"]}
        for _, d in manifests
        if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None"
    }
    jobs = _targets(config)
    for job, targets in jobs.items():
        for host, port in targets:
            if host != "localhost":
                assert host in headless and port in headless[host], f"{job}: {host}:{port} is no headless Service"
    assert {host for t in jobs.values() for host, _ in t} >= {"prediction-pods", "api-pods", "engine"}
    (tmp_path / "prometheus.yml").write_text(config_map["data"]["prometheus.yml"])
    _promtool(tmp_path / "prometheus.yml")


# --- the manifests' wiring ------------------------------------------------------------------------------------


def test_every_reference_between_manifests_resolves(manifests):
    kinds: dict[str, dict[str, dict]] = {}
    for _, d in manifests:
        kinds.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
    workloads = {**kinds.get("Deployment", {}), **kinds.get("StatefulSet", {})}
    pod_labels = {n: w["spec"]["template"]["metadata"]["labels"] for n, w in workloads.items()}
    for name, workload in workloads.items():
        assert workload["spec"]["selector"]["matchLabels"].items() <= pod_labels[name].items(), name
    port_names = {
        n: {p.get("name") for c in w["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
        for n, w in workloads.items()
    }
    for name, service in kinds["Service"].items():
        selected = [w for w, labels in pod_labels.items() if service["spec"]["selector"].items() <= labels.items()]
        assert selected, f"Service {name} selects no pod"
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert isinstance(target, int) or all(target in port_names[w] for w in selected), f"{name}: {target}"
    for name, statefulset in kinds.get("StatefulSet", {}).items():
        assert kinds["Service"][statefulset["spec"]["serviceName"]]["spec"]["clusterIP"] == "None", name
    for _, doc in manifests:
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for volume in pod.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in kinds["PersistentVolumeClaim"]
            if "configMap" in volume:
                assert volume["configMap"]["name"] in kinds["ConfigMap"]
        for container in pod.get("containers", []):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    assert ref["key"] in kinds["ConfigMap"][ref["name"]]["data"], f"{container['name']}: {ref}"
    for ingress in kinds["Ingress"].values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                ports = {p.get("name") for p in kinds["Service"][backend["name"]]["spec"]["ports"]}
                assert backend["port"]["name"] in ports, backend
    for hpa in kinds.get("HorizontalPodAutoscaler", {}).values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in workloads


# --- the Bento, the Dagster configuration (one Python process imports what they need) --------------------------

PROBE = r"""
import importlib, importlib.metadata, json, os, shutil, sys, tempfile
from pathlib import Path
import click

args = json.loads(sys.argv[1])
out = {}
module_name, attr = args["service"].split(":")
service = getattr(importlib.import_module(module_name), attr)
out["service_name"] = service.name
for extra in args["modules"]:
    importlib.import_module(extra)
first = set(args["packages"])
root = Path(args["root"])
out["files"] = sorted(
    Path(m.__file__).resolve().relative_to(root).as_posix()
    for name, m in list(sys.modules.items())
    if name.split(".")[0] in first and getattr(m, "__file__", None)
)
from serving.service import _workers
out["workers"] = {}
for value in args["worker_values"]:
    try:
        out["workers"][value] = _workers(value)
    except ValueError as exc:
        out["workers"][value] = None
eps = {e.name: e for e in importlib.metadata.entry_points(group="console_scripts")}
out["cli_options"] = {}
for words in args["programs"]:
    entry = eps[words[0]]
    command = entry.load()
    if not isinstance(command, click.Command):
        command = importlib.import_module(entry.module).cli
    for word in words[1:]:
        command = command.get_command(click.Context(command), word)
    out["cli_options"][" ".join(words)] = sorted(
        {o for p in command.params for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]}
    )
from dagster._core.instance.config import dagster_instance_config
home = tempfile.mkdtemp()
shutil.copy(args["dagster_yaml"], Path(home) / "dagster.yaml")
config, _ = dagster_instance_config(home)
out["dagster_config"] = sorted(config)
print("PROBE" + json.dumps(out))
"""
PROGRAMS = [
    ["mlflow", "server"],
    ["bentoml", "serve"],
    ["dagster-webserver"],
    ["dagster-daemon", "run"],
]


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory, compose, manifests) -> dict:
    """What one Python process finds: the Bento's service and what it imports, the options of the programs the
    containers run, the image's Dagster instance configuration validated (with a placeholder URL)."""
    bentofile = yaml.safe_load(BENTOFILE.read_text())
    workers = {environment(s).get("COURTSIDE_BENTO_WORKERS") for s in compose["services"].values()}
    for _, doc in manifests:
        for c in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            workers |= {e.get("value") for e in c.get("env", []) if e["name"] == "COURTSIDE_BENTO_WORKERS"}
    args = {
        "service": bentofile["service"],
        "modules": list(SERVICE_MODULES),
        "packages": PACKAGES,
        "root": str(ROOT),
        "worker_values": sorted((workers - {None}) | {"0", "two", "cpu_count"}),
        "programs": PROGRAMS,
        "dagster_yaml": str(ROOT / "dagster-postgres.yaml"),  # the image's $DAGSTER_HOME/dagster.yaml
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COURTSIDE_", "MLFLOW_", "DAGSTER_", "BENTOML_"))}
    env |= {
        "COURTSIDE_HOME": str(tmp_path_factory.mktemp("probe-courtside")),
        "DAGSTER_PG_URL": "postgresql+psycopg2://courtside:x@postgres:5432/courtside",
        "COURTSIDE_MAX_CONCURRENT_RUNS": "4",
        "BENTOML_DO_NOT_TRACK": "true",
    }
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("PROBE")), None)
    assert result.returncode == 0 and line, result.stdout[-2000:] + result.stderr[-3000:]
    return json.loads(line[len("PROBE") :])


def test_the_bentofile_names_the_prediction_service(probe):
    bentofile = yaml.safe_load(BENTOFILE.read_text())
    assert bentofile["service"] == "serving.service:PredictionService"
    assert probe["service_name"] == bentofile["name"] == "courtside_predictions"
    assert bentofile["python"]["lock_packages"] is False  # BentoML's locking would ask the package index
    assert bentofile["docker"]["python_version"] == "3.11"
    assert "models" not in bentofile  # from the MLflow registry at run time


def test_the_bento_includes_exactly_the_service_code(probe):
    from pathspec import PathSpec  # BentoML's own matcher (a dependency of bentoml)

    bentofile = yaml.safe_load(BENTOFILE.read_text())
    include = PathSpec.from_lines("gitwildmatch", bentofile["include"])
    needed = set(probe["files"])
    assert "serving/service.py" in needed and "training/inplay_models.py" in needed
    missing = sorted(f for f in needed if not include.match_file(f))
    assert not missing, f"the Bento would miss {missing}: add them to bentofile.yaml's include"
    included = {
        p.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for p in (ROOT / package).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and include.match_file(p.relative_to(ROOT).as_posix())
    }
    assert included == needed, f"included but not imported by the service: {sorted(included - needed)}"
    for pattern in bentofile["include"]:
        assert pattern.endswith(".py"), pattern  # code only: no data, no notebooks


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports in ``path`` (in functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_bento_pins_every_package_the_service_imports_at_the_lock_versions(probe):
    """The requirements are uv.lock's closure of ``SERVICE_PACKAGES`` (deploy/bento/requirements.py); each
    third-party package the service's own modules import is in it (what those packages import is the lock's
    business: their optional imports are not requirements)."""
    requirements = load_script(DEPLOY / "bento" / "requirements.py")
    text = (DEPLOY / "bento" / "requirements.txt").read_text()
    assert text == requirements.text(), "deploy/bento/requirements.txt is out of date: run deploy/bento/requirements.py"
    pinned = {_normalise(line.split("==")[0]) for line in text.splitlines() if line and not line.startswith("#")}
    distributions = importlib.metadata.packages_distributions()
    imported = set().union(*(_imports(ROOT / f) for f in probe["files"]))
    third_party = sorted(imported - set(sys.stdlib_module_names) - set(PACKAGES) - {"__future__"})
    assert {"bentoml", "mlflow", "xgboost", "sklearn", "fastapi"} <= set(third_party)
    unpinned = {
        m: distributions.get(m) for m in third_party if not pinned & set(map(_normalise, distributions.get(m, [])))
    }
    assert not unpinned, f"imported by the service but not in the Bento's requirements: {unpinned}"
    bentofile = yaml.safe_load(BENTOFILE.read_text())
    assert bentofile["python"]["requirements_txt"] == "deploy/bento/requirements.txt"


def test_the_worker_counts_the_deploy_files_give_are_valid(probe):
    workers = probe["workers"]
    assert workers["0"] is None and workers["two"] is None and workers["cpu_count"] == "cpu_count"
    given = {v: n for v, n in workers.items() if v not in ("0", "two", "cpu_count")}
    assert given and all(isinstance(n, int) and n >= 1 for n in given.values()), given


def test_the_dagster_instance_of_the_image_is_valid(probe):
    assert {"storage", "run_coordinator"} <= set(probe["dagster_config"])


def test_the_lock_has_dagster_k8s_paired_with_the_locked_dagster():
    """The Helm chart's K8sRunLauncher needs dagster-k8s in the code's image: the ``k8s`` extra, installed by
    deploy/Dockerfile, at the version Dagster releases with the locked core (core 1.X.Y, libraries 0.(X+16).Y, as
    dagster-celery and dagster-postgres are)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    versions = {p["name"]: p["version"] for p in lock["package"]}
    major, minor, patch = versions["dagster"].split(".")
    assert major == "1", versions["dagster"]
    paired = f"0.{int(minor) + 16}.{patch}"
    assert versions.get("dagster-k8s") == paired, (versions.get("dagster-k8s"), versions["dagster"])
    assert versions["dagster-celery"] == versions["dagster-postgres"] == paired
    project = next(p for p in lock["package"] if p.get("source", {}).get("editable") == ".")
    assert {d["name"] for d in project["optional-dependencies"]["k8s"]} == {"dagster-k8s"}
    assert "dagster-k8s" not in {d["name"] for d in project["dependencies"]}  # not on a machine's default install
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert any(r.startswith("dagster-k8s") for r in pyproject["project"]["optional-dependencies"]["k8s"])
    assert "uv sync --frozen --no-dev --extra k8s" in (DEPLOY / "Dockerfile").read_text()
