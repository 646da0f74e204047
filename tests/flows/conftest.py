"""One Prefect server for the whole test session, on a temporary SQLite database."""

from __future__ import annotations

import os
import subprocess
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
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId  # noqa: E402
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


@pytest.fixture(scope="session")
def gpu_worker(prefect_api_url: str, deployed, tmp_path_factory):
    """A process worker on the "gpu" pool, running at most one flow run at a time (as a GPU
    worker should), polling every second."""
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    env = prefect_env(prefect_api_url, PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="5")
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", "gpu", "--type", "process", "--limit", "1"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield log_path
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
