"""One Prefect server for the whole test session, on a temporary SQLite database."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

# Prefect reads its settings when first imported: keep its home (result storage, profiles)
# out of the user's ~/.prefect, and its telemetry from writing to the test database.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="gan-augment-prefect-home-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

import pytest  # noqa: E402
from prefect.client.orchestration import get_client  # noqa: E402
from prefect.client.schemas.actions import WorkPoolCreate  # noqa: E402
from prefect.client.schemas.filters import (  # noqa: E402
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.events.worker import EventsWorker  # noqa: E402
from prefect.logging.handlers import APILogWorker  # noqa: E402
from prefect.exceptions import ObjectAlreadyExists  # noqa: E402
from prefect.settings import PREFECT_API_URL  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def prefect_api_url() -> str:
    """The harness server's API URL (subprocesses such as workers need it explicitly)."""
    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


def _artifacts_of(flow_run_id: UUID) -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {artifact.key: artifact for artifact in sorted(found, key=lambda a: a.created)}


@pytest.fixture
def artifacts_of() -> Callable[[UUID], dict[str, Any]]:
    """artifacts_of(flow_run_id) -> {key: newest artifact of that key created in that run}."""
    return _artifacts_of


REPO_ROOT = Path(__file__).resolve().parents[2]


def prefect_env(api_url: str, **extra: str) -> dict[str, str]:
    """The environment of a Prefect subprocess (CLI, worker) that talks to the test server and
    imports this working copy's packages."""
    return {**os.environ, "PREFECT_API_URL": api_url, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1",
            **extra}


@pytest.fixture(scope="session")
def work_pools(prefect_api_url: str) -> list[str]:
    """The "cpu" and "gpu" work pools of deployments/prefect.yaml, as process pools."""
    with get_client(sync_client=True) as client:
        for name in ("cpu", "gpu"):
            try:
                client.create_work_pool(WorkPoolCreate(name=name, type="process"))
            except ObjectAlreadyExists:
                pass
    return ["cpu", "gpu"]


@pytest.fixture(scope="session")
def deployed(prefect_api_url: str, work_pools: list[str], tmp_path_factory) -> subprocess.CompletedProcess:
    """`prefect deploy --all --no-prompt` of deployments/prefect.yaml against the test server."""
    locations = tmp_path_factory.mktemp("deployed")
    env = prefect_env(prefect_api_url, GAN_AUGMENT_STORE=str(locations / "store"),
                      GAN_AUGMENT_OUT=str(locations / "out"))
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all",
         "--no-prompt"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@contextlib.contextmanager
def process_worker(api_url: str, pool: str, limit: int, log_path: Path):
    """A process worker subprocess on `pool` running at most `limit` flow runs at a time,
    polling every second, its output in `log_path` (yielded)."""
    env = prefect_env(api_url, PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="5")
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process", "--limit",
             str(limit)], cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield log_path
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


@pytest.fixture(scope="session")
def gpu_worker(prefect_api_url: str, deployed, tmp_path_factory):
    """A process worker on the "gpu" pool, running at most one flow run at a time (as a GPU
    worker should)."""
    with process_worker(prefect_api_url, "gpu", 1, tmp_path_factory.mktemp("worker") / "worker.log") as log_path:
        yield log_path


SECRET = "block-secret-3f9c1d7e"  # moto accepts any credentials; this one must never be recorded


@pytest.fixture
def lake_credentials(s3_endpoint) -> str:
    """An AwsCredentials block that reaches the loopback S3 endpoint; its name."""
    prefect_aws = pytest.importorskip("prefect_aws", reason="prefect-aws (the `aws` extra) is not installed")
    prefect_aws.AwsCredentials(aws_access_key_id="lake-key", aws_secret_access_key=SECRET, region_name="us-east-1",
                               aws_client_parameters={"endpoint_url": s3_endpoint}).save("lake", overwrite=True)
    return "lake"


@pytest.fixture
def no_ambient_credentials(monkeypatch, tmp_path):
    """A worker with no AWS credentials of its own: no variables, no files, no instance metadata
    lookup (which would leave loopback). s3fs instances are cached by their options, so the
    cache is emptied on the way in and out: none made here serves another test, or vice versa."""
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield
    s3fs.S3FileSystem.clear_instance_cache()


def _every(read, **kwargs) -> list[Any]:
    """All the objects a paged client call returns (200 a page, bounded)."""
    found: list[Any] = []
    for offset in range(0, 20_000, 200):
        batch = read(limit=200, offset=offset, **kwargs)
        found += batch
        if len(batch) < 200:
            break
    return found


def _events_text(client: Any) -> str:
    page, texts = client.request("POST", "/events/filter", json={"limit": 50}).json(), []
    for _ in range(400):  # the test session's events, 50 a page
        texts.append(json.dumps(page["events"]))
        if not page.get("next_page"):
            break
        page = client._client.get(page["next_page"]).json()
    return "\n".join(texts)


def recorded_text(flow_run_id: UUID) -> str:
    """Everything the test server recorded: flow runs with their parameters, task runs, logs,
    artifacts and events, as one JSON text. Logs and events travel in batches: this process's
    are flushed first, and the server's are read until the run's final state event is stored
    (a bounded wait)."""
    EventsWorker.drain_all()
    APILogWorker.drain_all()
    with get_client(sync_client=True) as client:
        runs = _every(client.read_flow_runs)
        texts = [obj.model_dump_json() for obj in runs + _every(client.read_task_runs)]
        logs = _every(client.read_logs, log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[r.id for r in runs])))
        texts += [obj.model_dump_json() for obj in logs + _every(client.read_artifacts)]
        final_event = f"prefect.flow-run.{client.read_flow_run(flow_run_id).state.name}"
        for _ in range(120):
            events = _events_text(client)
            if final_event in events and str(flow_run_id) in events:
                break
            time.sleep(0.5)
    return "\n".join([*texts, events])
