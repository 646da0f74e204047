"""One Prefect server for the whole test session, on a temporary SQLite database."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any
from uuid import UUID

# Prefect reads its settings when first imported: keep its home (result storage, profiles)
# out of the user's ~/.prefect, and its telemetry from writing to the test database.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="gan-augment-prefect-home-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

import pytest  # noqa: E402
from prefect.client.orchestration import get_client  # noqa: E402
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId  # noqa: E402
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
