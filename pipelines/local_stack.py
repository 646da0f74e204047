"""A self-hosted Prefect set-up on this machine, as the README's "Scheduled runs and workers"
builds it, run as subprocesses: `prefect server start` on loopback with its own home and SQLite
database, `prefect work-pool create`, `prefect deploy` of deployments/prefect.yaml and process
workers. The end-to-end test of the scheduled path and benchmarks/deployed_nightly.py use it.

Every process is started in a process group of its own and stopped by its id (the group: the
server's or worker's children too), and so are the flow-run processes the workers started.
The subprocesses get an environment without the caller's PREFECT_* settings, so they never
talk to another Prefect server (a test harness's, the user's profile).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port nothing listens on now, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_group(process: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM to the process group of `process` (started with start_new_session), SIGKILL after
    `grace` seconds; returns once `process` has exited."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 30.0)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    kill_group(process.pid)  # what the leader left behind in its group


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by `pid`, if any is left."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc; an empty list elsewhere)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended while listing
        children.setdefault(int(fields[1]), []).append(int(entry.parent.name))
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


class LocalStack:
    """A Prefect server, work pools, deployments and workers under `root`, all local.

    Use it as a context manager: leaving it stops every process it started, also on error.
    """

    def __init__(self, root: str | os.PathLike, project_dir: Path = PROJECT_ROOT, **env: str) -> None:
        self.root, self.project_dir = Path(root), project_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self.api_url = f"http://127.0.0.1:{free_port()}/api"
        caller = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
        self.env = {
            **caller, "PREFECT_HOME": str(self.root / "home"), "PREFECT_API_URL": self.api_url,
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{self.root / 'prefect.db'}",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
            # SQLite has one writer at a time: on a loaded machine, wait for the lock (up to a
            # minute) rather than answer 503 after the default 10 s
            "PREFECT_SERVER_DATABASE_TIMEOUT": "60",
            # cron schedules would add runs of their own (an hourly scan) to what is measured
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(project_dir), caller.get("PYTHONPATH")])),
            "OMP_NUM_THREADS": "1", **env,
        }
        self.processes: dict[str, subprocess.Popen] = {}

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop_all()

    def _start(self, name: str, args: list[str], **env: str) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "a")  # noqa: SIM115 - the child holds it open
        process = subprocess.Popen([sys.executable, "-m", "prefect", *args], cwd=self.project_dir,
                                   env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        log.close()
        self.processes[name] = process
        return process

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.root / f"{name}.log"
        return f"--- {name}.log\n" + (path.read_text(errors="replace")[-chars:] if path.exists() else "")

    def start_server(self, timeout: float = 180.0) -> None:
        """`prefect server start` on the free port; returns when its API answers."""
        port = self.api_url.rsplit(":", 1)[1].split("/")[0]
        server = self._start("server", ["server", "start", "--host", "127.0.0.1", "--port", port])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"prefect server exited with {server.returncode}\n{self.log_tail('server')}")
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"prefect server not up after {timeout:.0f} s\n{self.log_tail('server')}")

    def prefect(self, *args: str, timeout: float = 300.0, **env: str) -> str:
        """Run one `prefect` command against the server; its output.

        Raises:
            RuntimeError: it failed, with its output.
        """
        done = subprocess.run([sys.executable, "-m", "prefect", *args], cwd=self.project_dir,
                              env={**self.env, **env}, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"prefect {' '.join(args)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout

    def deploy(self, store_url: str, out_url: str, prefect_file: str = "deployments/prefect.yaml") -> str:
        """The README's pools and `prefect deploy --all` of `prefect_file` for these locations."""
        for pool in ("cpu", "gpu"):
            self.prefect("work-pool", "create", pool, "--type", "process")
        return self.prefect("deploy", "--prefect-file", prefect_file, "--all", "--no-prompt",
                            GAN_AUGMENT_STORE=store_url, GAN_AUGMENT_OUT=out_url)

    def start_worker(self, pool: str, name: str, limit: int | None = None) -> subprocess.Popen:
        """A process worker on `pool`, polling every second."""
        args = ["worker", "start", "--pool", pool, "--type", "process", "--name", name]
        return self._start(name, args + (["--limit", str(limit)] if limit else []),
                           PREFECT_WORKER_QUERY_SECONDS="1")

    def kill(self, name: str) -> list[int]:
        """SIGKILL process `name` and everything below it at once, as a lost machine would stop
        them (nothing gets to report anything); the ids killed."""
        process = self.processes.pop(name)
        pids = [process.pid, *descendants(process.pid)]
        for pid in pids:
            kill_group(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait(timeout=30)
        return pids

    def stop_all(self) -> None:
        """Stop the workers (and the flow-run processes below them), then the server."""
        for name in sorted(self.processes, key=lambda n: n == "server"):
            process = self.processes.pop(name)
            below = descendants(process.pid)
            stop_group(process)
            for pid in below:  # flow-run processes may run in process groups of their own
                kill_group(pid)

    @contextmanager
    def client(self) -> Iterator[SyncPrefectClient]:
        """A Prefect client of this server (this process's own settings are left as they were)."""
        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            with get_client(sync_client=True) as client:
                yield client
