"""``courtside up --profile cluster`` (``make up-cluster``): the scaled form of Courtside on this machine, as processes.

The same code as the single-machine default (``courtside up``), with the configuration of a cluster (issue 14;
docs/SCALING.md):

- **PostgreSQL** for the application database, Dagster's instance (schema ``dagster``) and MLflow's store (schema
  ``mlflow``): the production storage profile. A server of this profile's own, its data kept in
  ``$COURTSIDE_HOME/cluster/postgres/data`` (fsync on) and reused by the next ``up --profile cluster``; it listens
  on 127.0.0.1 only (``COURTSIDE_CLUSTER_POSTGRES_PORT``, default 5433), no Unix socket, as the superuser
  ``courtside`` with a password kept in ``$COURTSIDE_HOME/cluster/postgres.secret`` (0600). As root it runs as the
  ``postgres`` user (PostgreSQL refuses root), which must be able to reach that folder.
- **Redis**, the Celery broker: a server of this profile's own under ``$COURTSIDE_HOME/cluster/redis``, 127.0.0.1
  only (``COURTSIDE_CLUSTER_REDIS_PORT``, default 6380), a password in its 0600 configuration file, nothing saved
  to disk (it only carries the steps of runs in flight).
- **Dagster on Celery**: ``COURTSIDE_EXECUTOR=celery`` and ``COURTSIDE_CELERY_WORKERS`` Celery workers under the
  supervisor (``courtside.cli.worker_specs``): every step of the pipeline and of the sensors' runs is a Celery task.
- **N engine workers** (``python -m serving.engine --worker w1`` ...), partitioned by match over the one Postgres
  event log, each with its metrics endpoint (``COURTSIDE_CLUSTER_ENGINE_METRICS_PORT``, default 9100, then 9101 ...).
- **N gateway replicas**: ``python -m serving.api --replicas N`` on the API's two ports (SO_REUSEPORT).
- **N BentoML workers** of the prediction service (``COURTSIDE_BENTO_WORKERS``), and an MLflow server with
  ``--workers N``.

Counts: ``--engines`` / ``COURTSIDE_CLUSTER_ENGINES``, ``--replicas`` / ``COURTSIDE_CLUSTER_REPLICAS``,
``--bento-workers`` / ``COURTSIDE_BENTO_WORKERS``, ``--celery-workers`` / ``COURTSIDE_CELERY_WORKERS``,
``COURTSIDE_CLUSTER_MLFLOW_WORKERS``; 2 of each by default. A ``COURTSIDE_DATABASE_URL`` (Postgres) or
``COURTSIDE_CELERY_BROKER`` already set is used instead of the local server. Ctrl-C stops every process, then
Redis and PostgreSQL (a fast shutdown: its data stays).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from courtside.settings import Settings
from courtside.supervisor import Supervisor

POSTGRES_PORT_VARIABLE = "COURTSIDE_CLUSTER_POSTGRES_PORT"
REDIS_PORT_VARIABLE = "COURTSIDE_CLUSTER_REDIS_PORT"
ENGINE_METRICS_PORT_VARIABLE = "COURTSIDE_CLUSTER_ENGINE_METRICS_PORT"
DEFAULT_POSTGRES_PORT = 5433
"""One above PostgreSQL's usual 5432, so a system server there is left alone."""
DEFAULT_REDIS_PORT = 6380
"""One above Redis's usual 6379."""
DEFAULT_ENGINE_METRICS_PORT = 9100
"""The first engine worker's metrics port (deploy/compose.yaml's), the next ones count up from it."""
DEFAULT_COUNT = 2
POSTGRES_USER = "courtside"
POSTGRES_DATABASE = "courtside"
TOOLS_HINT = "scripts/ensure-test-tools"

COUNTS: dict[str, tuple[str, str]] = {
    "engines": ("COURTSIDE_CLUSTER_ENGINES", "engine workers (python -m serving.engine --worker wN)"),
    "replicas": ("COURTSIDE_CLUSTER_REPLICAS", "live API + gateway replicas (python -m serving.api --replicas N)"),
    "bento_workers": ("COURTSIDE_BENTO_WORKERS", "BentoML worker processes of the prediction service"),
    "celery_workers": ("COURTSIDE_CELERY_WORKERS", "Celery workers of the Dagster steps"),
    "mlflow_workers": ("COURTSIDE_CLUSTER_MLFLOW_WORKERS", "MLflow server workers"),
}
"""Every count of the profile: its variable and what it counts (``--engines`` ... override the variables)."""


class ClusterError(RuntimeError):
    """The cluster profile cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class Scale:
    """How many of each scalable process ``courtside up`` starts. The default is the single-machine form: the only
    engine, one API process, the prediction service's own worker count, one MLflow worker (``courtside.cli``'s
    specs are then exactly those of ``courtside up``)."""

    engine_workers: tuple[str, ...] = ()
    """Engine worker ids (``python -m serving.engine --worker <id>``, Postgres only); none: the only engine."""
    engine_metrics_port: int | None = None
    """The first engine worker's metrics port (the next workers count up from it); None: no metrics endpoint."""
    api_replicas: int = 1
    """Processes of the live API + gateway sharing its two ports (``python -m serving.api --replicas``)."""
    bento_workers: int | None = None
    """``COURTSIDE_BENTO_WORKERS`` of the prediction service; None: its default (the variable, else 1)."""
    mlflow_workers: int = 1
    """``mlflow server --workers``."""

    def metrics_port(self, worker: str) -> int | None:
        """The metrics port of one engine worker (None without metrics)."""
        if self.engine_metrics_port is None:
            return None
        return self.engine_metrics_port + self.engine_workers.index(worker)


SINGLE = Scale()
"""The single-machine default of ``courtside up``."""


@dataclass(frozen=True)
class ClusterCounts:
    """How many of each process the cluster profile runs (``COUNTS``)."""

    engines: int = DEFAULT_COUNT
    replicas: int = DEFAULT_COUNT
    bento_workers: int = DEFAULT_COUNT
    celery_workers: int = DEFAULT_COUNT
    mlflow_workers: int = DEFAULT_COUNT

    @classmethod
    def from_env(cls, env: Mapping[str, str], overrides: Mapping[str, int | None] | None = None) -> ClusterCounts:
        """The counts of ``overrides`` (the command line's, None: not given), else of the variables, else 2 each;
        ClusterError naming every bad one."""
        values: dict[str, int] = {}
        problems = []
        for name, (variable, what) in COUNTS.items():
            given = (overrides or {}).get(name)
            raw = str(given) if given is not None else (env.get(variable) or "").strip()
            source = f"--{name.replace('_', '-')}" if given is not None else variable
            if not raw:
                values[name] = DEFAULT_COUNT
                continue
            if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 99:
                problems.append(f"{source}={raw!r}: the number of {what}, 1 to 99")
                continue
            values[name] = int(raw)
        if problems:
            raise ClusterError("; ".join(problems))
        return cls(**values)


@dataclass(frozen=True)
class ClusterPorts:
    """The ports the cluster profile adds to ``courtside up``'s (``courtside.exposure.Ports``)."""

    postgres: int = DEFAULT_POSTGRES_PORT
    redis: int = DEFAULT_REDIS_PORT
    engine_metrics: int = DEFAULT_ENGINE_METRICS_PORT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ClusterPorts:
        values = {}
        problems = []
        for name, variable, default in (
            ("postgres", POSTGRES_PORT_VARIABLE, DEFAULT_POSTGRES_PORT),
            ("redis", REDIS_PORT_VARIABLE, DEFAULT_REDIS_PORT),
            ("engine_metrics", ENGINE_METRICS_PORT_VARIABLE, DEFAULT_ENGINE_METRICS_PORT),
        ):
            raw = (env.get(variable) or "").strip() or str(default)
            if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 65535:
                problems.append(f"{variable}={raw!r}: a TCP port")
                continue
            values[name] = int(raw)
        if problems:
            raise ClusterError("; ".join(problems))
        return cls(**values)


def engine_worker_ids(count: int) -> tuple[str, ...]:
    """``w1`` ... ``wN``: the engine workers' ids (1 to 8 letters or digits, ``storage.shared_risk``)."""
    return tuple(f"w{i}" for i in range(1, count + 1))


def scale_of(counts: ClusterCounts, ports: ClusterPorts) -> Scale:
    """What the cluster profile asks of ``courtside up``'s specs."""
    return Scale(
        engine_workers=engine_worker_ids(counts.engines),
        engine_metrics_port=ports.engine_metrics,
        api_replicas=counts.replicas,
        bento_workers=counts.bento_workers,
        mlflow_workers=counts.mlflow_workers,
    )


def cluster_environment(database_url: str, broker_url: str, counts: ClusterCounts) -> dict[str, str]:
    """What the profile exports for ``courtside up`` and every process it starts: the Postgres application database
    (from which the storage profile derives Dagster's and MLflow's), the Celery executor, its broker and workers."""
    return {
        "COURTSIDE_DATABASE_URL": database_url,
        "COURTSIDE_EXECUTOR": "celery",
        "COURTSIDE_CELERY_BROKER": broker_url,
        "COURTSIDE_CELERY_WORKERS": str(counts.celery_workers),
    }


def redacted(url: str) -> str:
    """``url`` without its password (for printing)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True when something listens on (host, port) or the port cannot be bound there."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)


# --- PostgreSQL ---------------------------------------------------------------------------------------------


def postgres_binaries(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``initdb`` and ``pg_ctl``: from ``PG_BINDIR``, else PATH, else Debian's ``/usr/lib/postgresql/<v>/bin``
    (the newest), as ``scripts/test-postgres`` finds them; ClusterError when missing."""
    env = os.environ if env is None else env
    found: dict[str, str] = {}
    for name in ("initdb", "pg_ctl"):
        if env.get("PG_BINDIR"):
            candidate = Path(env["PG_BINDIR"]) / name
            path = str(candidate) if os.access(candidate, os.X_OK) else None
        else:
            path = shutil.which(name)
            if path is None:
                versions = sorted(
                    Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                    key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
                )
                path = str(versions[-1]) if versions else None
        if path is None:
            raise ClusterError(
                f"the PostgreSQL server program {name} was not found (PATH, PG_BINDIR, /usr/lib/postgresql/*/bin): "
                f"install the server binaries ({TOOLS_HINT} postgres: Debian's postgresql), or set "
                "COURTSIDE_DATABASE_URL=postgresql+psycopg://... to a server of your own"
            )
        found[name] = path
    return found


@dataclass
class LocalPostgres:
    """The cluster profile's PostgreSQL server: data in ``folder/data`` (kept), log in ``folder/server.log``."""

    folder: Path
    port: int
    secret_file: Path
    started: bool = field(default=False, init=False)
    """Whether this process started (or adopted) the server, so ``stop`` stops it."""

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def _owner(self) -> tuple[int, int] | None:
        """(uid, gid) of the ``postgres`` user when we are root (PostgreSQL refuses to run as root), else None."""
        if os.geteuid() != 0:
            return None
        import pwd

        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            raise ClusterError(
                "running as root, and PostgreSQL refuses to run as root, but there is no 'postgres' user to run it "
                f"as (Debian's postgresql package creates it: {TOOLS_HINT} postgres), or set "
                "COURTSIDE_DATABASE_URL=postgresql+psycopg://... to a server of your own"
            ) from None
        return entry.pw_uid, entry.pw_gid

    def _as_owner(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *command] if self._owner() else command

    def _run(self, command: list[str], timeout_s: float) -> subprocess.CompletedProcess:
        return subprocess.run(
            self._as_owner(command),
            cwd=self.folder,  # the server user may not be allowed into the caller's working directory
            capture_output=True,
            text=True,
            timeout=timeout_s,
            start_new_session=True,  # Ctrl-C in the terminal reaches us, not the server (stopped in order)
        )

    def password(self) -> str:
        return self.secret_file.read_text().strip()

    def url(self, database: str = POSTGRES_DATABASE) -> str:
        return f"postgresql+psycopg://{POSTGRES_USER}:{self.password()}@127.0.0.1:{self.port}/{database}"

    def running_port(self) -> int | None:
        """The port of a server already running on this data folder (left by an ``up`` that was killed), or None."""
        pid_file = self.data / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, another user's (the postgres user when we are not root: not ours to use anyway)
        return port

    def _prepare_folder(self) -> None:
        owner = self._owner()
        self.folder.mkdir(parents=True, exist_ok=True)
        if owner:
            os.chown(self.folder, *owner)
            os.chmod(self.folder, 0o700)
            if subprocess.run(self._as_owner(["test", "-w", str(self.folder)]), capture_output=True).returncode:
                raise ClusterError(
                    f"the 'postgres' user cannot reach {self.folder} (PostgreSQL refuses to run as root, so as root "
                    "it runs as that user, who must be able to enter every folder above it: chmod o+x on them), or "
                    "use a COURTSIDE_HOME it can reach, or set COURTSIDE_DATABASE_URL=postgresql+psycopg://..."
                )

    def _initdb(self, initdb: str) -> None:
        if not self.secret_file.exists():
            _write_private(self.secret_file, secrets.token_urlsafe(24) + "\n")
        pwfile = self.folder / ".initdb-password"
        _write_private(pwfile, self.password() + "\n")
        owner = self._owner()
        if owner:
            os.chown(pwfile, *owner)
        try:
            done = self._run(
                [
                    initdb,
                    "-D",
                    str(self.data),
                    "-U",
                    POSTGRES_USER,
                    f"--pwfile={pwfile}",
                    "--auth=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
                timeout_s=300,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        (self.folder / "initdb.log").write_text(done.stdout + done.stderr)
        if done.returncode:
            shutil.rmtree(self.data, ignore_errors=True)  # half a cluster is of no use: the next start begins again
            raise ClusterError(f"initdb failed (see {self.folder / 'initdb.log'}):\n{done.stderr.strip()[-2000:]}")

    def start(self) -> str:
        """Start the server (initialising it the first time) or adopt the one running on its data; its URL."""
        binaries = postgres_binaries()
        self._prepare_folder()
        if not (self.data / "PG_VERSION").exists():
            self._initdb(binaries["initdb"])
        elif not self.secret_file.exists():
            raise ClusterError(
                f"{self.data} holds a database but its password file {self.secret_file} is missing: put the password "
                f"of the superuser {POSTGRES_USER!r} back in it, or move {self.folder} away to start a new database"
            )
        running = self.running_port()
        if running is not None:
            self.port, self.started = running, True
            print(f"PostgreSQL already running on {self.data} (port {running}): reused", flush=True)
        else:
            if port_in_use(self.port):
                raise ClusterError(
                    f"port {self.port} of 127.0.0.1 is taken: set {POSTGRES_PORT_VARIABLE} to a free port for the "
                    "cluster profile's PostgreSQL"
                )
            self.started = True  # from here on, stop() stops what pg_ctl may have started
            options = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
            log = self.folder / "server.log"
            done = self._run(
                [binaries["pg_ctl"], "-D", str(self.data), "-l", str(log), "-w", "-t", "120", "-o", options, "start"],
                timeout_s=180,
            )
            if done.returncode:
                tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
                raise ClusterError(
                    f"PostgreSQL did not start on port {self.port}: {done.stderr.strip() or done.stdout.strip()}\n"
                    + "\n".join(tail)
                )
        self._ensure_database()
        return self.url()

    def _ensure_database(self) -> None:
        from sqlalchemy import create_engine, text

        admin = create_engine(self.url("postgres"), isolation_level="AUTOCOMMIT")
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with admin.connect() as conn:
                        if not conn.execute(
                            text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": POSTGRES_DATABASE}
                        ).first():
                            conn.exec_driver_sql(f'CREATE DATABASE "{POSTGRES_DATABASE}"')
                    return
                except Exception as exc:  # noqa: BLE001 - still starting (recovery after a crash): retried
                    if time.monotonic() > deadline:
                        raise ClusterError(
                            f"PostgreSQL on port {self.port} does not accept connections: {exc}"
                        ) from None
                    time.sleep(0.5)
        finally:
            admin.dispose()

    def stop(self) -> None:
        """A fast shutdown (sessions ended, everything written to disk); the data stays."""
        if not self.started or not (self.data / "postmaster.pid").exists():
            return
        pg_ctl = postgres_binaries()["pg_ctl"]
        done = self._run([pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop"], timeout_s=90)
        if done.returncode:
            print(f"PostgreSQL did not stop cleanly: {done.stderr.strip()}", file=sys.stderr)
        else:
            print(f"PostgreSQL stopped (data kept in {self.data})", flush=True)
        self.started = False


# --- Redis --------------------------------------------------------------------------------------------------


@dataclass
class LocalRedis:
    """The cluster profile's Redis (the Celery broker): configuration, pid and log in ``folder``; nothing saved."""

    folder: Path
    port: int
    started: bool = field(default=False, init=False)

    @property
    def config(self) -> Path:
        return self.folder / "redis.conf"

    @property
    def pid_file(self) -> Path:
        return self.folder / "redis.pid"

    def _password(self) -> str | None:
        try:
            for line in self.config.read_text().splitlines():
                if line.startswith("requirepass "):
                    return line.split(" ", 1)[1].strip().strip('"')
        except OSError:
            pass
        return None

    def _configured_port(self) -> int | None:
        try:
            for line in self.config.read_text().splitlines():
                if line.startswith("port "):
                    return int(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return None

    def url(self, port: int | None = None, password: str | None = None) -> str:
        return f"redis://:{password or self._password()}@127.0.0.1:{port or self.port}/0"

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def answers(self, url: str) -> bool:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self) -> str:
        """Start the server (or adopt the one a killed ``up`` left running here); its URL."""
        server = shutil.which("redis-server")
        if server is None:
            raise ClusterError(
                "redis-server was not found on PATH: install it "
                f"({TOOLS_HINT} redis: Debian's redis-server), or set COURTSIDE_CELERY_BROKER=redis://... "
                "to a Redis of your own"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        running, port = self._pid(), self._configured_port()
        if running is not None and port is not None and self.answers(self.url(port)):
            self.port, self.started = port, True
            print(f"Redis already running in {self.folder} (port {port}): reused", flush=True)
            return self.url()
        if port_in_use(self.port):
            raise ClusterError(
                f"port {self.port} of 127.0.0.1 is taken: set {REDIS_PORT_VARIABLE} to a free port for the cluster "
                "profile's Redis"
            )
        password = secrets.token_urlsafe(24)
        _write_private(
            self.config,
            "\n".join(
                [
                    "# written by `courtside up --profile cluster` (courtside/cluster.py) at every start",
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    "protected-mode yes",
                    f"requirepass {password}",
                    "daemonize yes",
                    f'dir "{self.folder}"',
                    f'pidfile "{self.pid_file}"',
                    f'logfile "{self.folder / "server.log"}"',
                    'save ""',
                    "appendonly no",
                    "",
                ]
            ),
        )
        self.pid_file.unlink(missing_ok=True)
        self.started = True
        done = subprocess.run(
            [server, str(self.config)], capture_output=True, text=True, timeout=60, start_new_session=True
        )
        url = self.url(password=password)
        deadline = time.monotonic() + 30
        while done.returncode == 0 and time.monotonic() < deadline:
            if self.answers(url):
                return url
            time.sleep(0.1)
        log = self.folder / "server.log"
        tail = log.read_text(errors="replace").splitlines()[-15:] if log.exists() else []
        self.stop()
        raise ClusterError(f"Redis did not start on port {self.port}: {done.stderr.strip()}\n" + "\n".join(tail))

    def stop(self) -> None:
        """SIGTERM (Redis exits; nothing to save)."""
        if not self.started:
            return
        pid = self._pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and self._pid() is not None:
                time.sleep(0.1)
            if self._pid() is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            print("Redis stopped", flush=True)
        self.started = False


# --- the profile --------------------------------------------------------------------------------------------


@dataclass
class Backing:
    """The two servers every cluster process needs: the profile's own, unless the environment names others."""

    home: Path
    ports: ClusterPorts
    postgres: LocalPostgres | None = None
    redis: LocalRedis | None = None

    @property
    def folder(self) -> Path:
        return self.home / "cluster"

    def start(self, env: Mapping[str, str]) -> tuple[str, str]:
        """(database URL, broker URL): the environment's when set, else the local servers', started here."""
        from storage.db import is_postgres

        database_url = (env.get("COURTSIDE_DATABASE_URL") or "").strip()
        broker_url = (env.get("COURTSIDE_CELERY_BROKER") or "").strip()
        if database_url and not is_postgres(database_url):
            raise ClusterError(
                f"COURTSIDE_DATABASE_URL={redacted(database_url)} is not PostgreSQL: the cluster's engine workers, "
                "Dagster's Celery workers and MLflow need Postgres; unset it (the profile starts its own) or point it "
                "at a PostgreSQL database (postgresql+psycopg://...)"
            )
        if not database_url:
            self.postgres = LocalPostgres(
                self.folder / "postgres", self.ports.postgres, self.folder / "postgres.secret"
            )
            database_url = self.postgres.start()
        if not broker_url:
            self.redis = LocalRedis(self.folder / "redis", self.ports.redis)
            broker_url = self.redis.start()
        return database_url, broker_url

    def stop(self) -> None:
        """Redis, then PostgreSQL (each only when started here)."""
        for server in (self.redis, self.postgres):
            if server is not None:
                try:
                    server.stop()
                except Exception as exc:  # noqa: BLE001 - the other server must still be stopped
                    print(f"could not stop {type(server).__name__}: {exc}", file=sys.stderr)


def _group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid`` (Linux's /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:  # fields after "(comm)": state, ppid, pgrp
            members.append(int(entry.name))
    return members


def end_process_groups(pgids: list[int], grace_s: float = 10.0) -> dict[int, list[int]]:
    """Processes the services left in their process groups once the supervisor stopped them (it waits for each
    service's own process only). One is Dagster's code server: it stops only when its runs have, and a run of the
    sensors in flight at Ctrl-C waits for Celery steps that the stopped workers will not finish, while the server's
    clean-up needs PostgreSQL. Given ``grace_s`` to end, then killed, before Redis and PostgreSQL stop. Returns the
    groups killed and their processes."""
    deadline = time.monotonic() + grace_s
    left = {pgid: _group_members(pgid) for pgid in pgids}
    while any(left.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
        left = {pgid: _group_members(pgid) for pgid in pgids}
    killed = {pgid: members for pgid, members in left.items() if members}
    for pgid in killed:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    return killed


def after_stop(supervisor: Supervisor) -> None:
    """``courtside up``'s hook once the services are stopped: their process groups emptied (``end_process_groups``)."""
    pgids = [st.child.pid for st in supervisor.services.values() if st.child is not None]
    for pgid, members in end_process_groups(pgids).items():
        name = next(n for n, st in supervisor.services.items() if st.child is not None and st.child.pid == pgid)
        print(f"{name}: {len(members)} process(es) of its group still running after its stop: killed ({members})")


def describe(settings: Settings, web_host: str, scale: Scale, counts: ClusterCounts, backing: Backing) -> str:
    """What the cluster profile runs where (printed at the end of the start, after the single profile's list)."""
    database = os.environ.get("COURTSIDE_DATABASE_URL", "")
    broker = os.environ.get("COURTSIDE_CELERY_BROKER", "")
    logs = settings.home / "logs"
    pg = backing.postgres
    rows = [
        (
            "PostgreSQL",
            redacted(database),
            f"data kept in {pg.data} (password in {pg.secret_file}); stopped at Ctrl-C"
            if pg
            else "COURTSIDE_DATABASE_URL (not started here)",
        ),
        ("", "schemas: public (application), dagster (Dagster's instance), mlflow (MLflow's store)", ""),
        (
            "Redis (Celery broker)",
            redacted(broker),
            f"in {backing.redis.folder}, nothing saved; stopped at Ctrl-C"
            if backing.redis
            else "COURTSIDE_CELERY_BROKER (not started here)",
        ),
        (
            "Celery workers",
            f"{counts.celery_workers} (Dagster steps; COURTSIDE_EXECUTOR=celery)",
            f"logs {logs}/celery-worker-N.log",
        ),
    ]
    for worker in scale.engine_workers:
        port = scale.metrics_port(worker)
        rows.append(
            (
                f"Engine worker {worker}",
                f"http://{web_host}:{port}/metrics (also /healthz, /readyz)" if port else "no metrics endpoint",
                f"log {logs}/engine-{worker}.log",
            )
        )
    rows += [
        ("Live API replicas", f"{scale.api_replicas} processes sharing the API and gateway ports (SO_REUSEPORT)", ""),
        ("Prediction service", f"{scale.bento_workers} BentoML workers sharing its port", ""),
        ("MLflow server", f"{scale.mlflow_workers} workers on the Postgres store", ""),
    ]
    lines = ["", "Cluster profile: the scaled form on this machine (docs/SCALING.md)"]
    for name, what, note in rows:
        lines.append(f"{name:<22}{what}")
        if note:
            lines.append(f"{'':<22}{note}")
    return "\n".join(lines)


def add_options(parser: argparse.ArgumentParser) -> None:
    """``courtside up``'s profile options."""
    group = parser.add_argument_group(
        "profile",
        "--profile cluster: the scaled form on this machine (PostgreSQL, Redis, Dagster on Celery workers, engine "
        "workers, gateway replicas, BentoML workers; courtside/cluster.py, docs/SCALING.md)",
    )
    group.add_argument(
        "--profile",
        choices=("single", "cluster"),
        default="single",
        help="single (default): one process of each, embedded SQLite stores; cluster: the scaled form",
    )
    for name, (variable, what) in COUNTS.items():
        if name == "mlflow_workers":
            continue
        group.add_argument(
            f"--{name.replace('_', '-')}",
            type=int,
            metavar="N",
            help=f"with --profile cluster: {what} (default {variable} or {DEFAULT_COUNT})",
        )


def count_options(args: argparse.Namespace) -> list[str]:
    """The profile's count options given on the command line (``--engines 3`` ...): they need ``--profile cluster``."""
    return [
        f"--{name.replace('_', '-')}"
        for name in COUNTS
        if name != "mlflow_workers" and getattr(args, name, None) is not None
    ]


def up(
    args: argparse.Namespace,
    serve: Callable[[Settings, Scale, Callable[[Settings, str], str], Callable[[Supervisor], None]], int],
) -> int:
    """``courtside up --profile cluster``: the backing servers, the profile's environment, then ``serve`` (the body
    of ``courtside up``) with the profile's scale; Redis and PostgreSQL stopped after everything else."""
    try:
        counts = ClusterCounts.from_env(os.environ, {name: getattr(args, name, None) for name in COUNTS})
        ports = ClusterPorts.from_env(os.environ)
    except ClusterError as exc:
        print(f"refusing to start: {exc}", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    scale = scale_of(counts, ports)
    taken = [
        f"{ENGINE_METRICS_PORT_VARIABLE}: port {p} (engine worker {w}'s metrics)"
        for w in scale.engine_workers
        if (p := scale.metrics_port(w)) is not None and port_in_use(p, settings.bind_host)
    ]
    if taken:
        print("refusing to start: ports taken: " + "; ".join(taken), file=sys.stderr)
        return 2
    backing = Backing(settings.home, ports)
    try:
        try:
            database_url, broker_url = backing.start(os.environ)
        except ClusterError as exc:
            print(f"refusing to start the cluster profile: {exc}", file=sys.stderr)
            return 2
        if (os.environ.get("COURTSIDE_EXECUTOR") or "celery").strip().lower() != "celery":
            print(
                f"NOTE: COURTSIDE_EXECUTOR={os.environ['COURTSIDE_EXECUTOR']} replaced by celery (the cluster profile)"
            )
        os.environ.update(cluster_environment(database_url, broker_url, counts))
        print(
            f"cluster profile: PostgreSQL {redacted(database_url)}, Redis {redacted(broker_url)}; {counts.engines} "
            f"engine workers, {counts.replicas} API replicas, {counts.bento_workers} BentoML workers, "
            f"{counts.celery_workers} Celery workers",
            flush=True,
        )
        return serve(Settings.from_env(), scale, lambda s, host: describe(s, host, scale, counts, backing), after_stop)
    except KeyboardInterrupt:
        print("\nstopping...")
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave the servers running
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        backing.stop()
