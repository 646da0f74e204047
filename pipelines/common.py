"""Small helpers every flow shares: parameter checks, artifact keys and run summaries."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from prefect.cache_policies import NO_CACHE

from gan_augment import layout
from gan_augment.io.fsio import is_transient, join_url

# fsspec option names that carry secrets. Flow parameters are stored in the Prefect database
# and shown in the UI, so credentials must come from the environment (AWS_* variables, an AWS
# profile, FSSPEC_S3_* settings) or the worker's service account instead.
_SECRET_OPTION = re.compile(r"(^|_)(key|secret|token|password|passwd|credentials?)$", re.IGNORECASE)
_NOT_KEY_CHARS = re.compile(r"[^a-z0-9]+")


def check_storage_options(storage_options: dict[str, Any] | None) -> dict[str, Any] | None:
    """Return `storage_options` unless it holds a credential, which would be stored in the
    Prefect database with the flow run's parameters.

    Raises:
        ValueError: naming the offending option and where credentials belong instead.
    """
    for name, value in (storage_options or {}).items():
        if isinstance(value, dict):
            check_storage_options(value)
        elif _SECRET_OPTION.search(str(name)):
            raise ValueError(
                f"storage option {name!r} looks like a credential; flow parameters are stored in the "
                "Prefect database, so pass credentials through the worker's environment instead "
                "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an IAM role)"
            )
    return storage_options


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits and dashes) made from `parts`.

    Prefect versions artifacts by key, so each dataset keeps one history per artifact kind.
    When the parts had to be changed to fit, a short hash of the original keeps two names that
    differ only in case or punctuation ("Cats" and "cats") on separate keys.
    """
    text = "-".join(parts)
    key = _NOT_KEY_CHARS.sub("-", text.lower()).strip("-") or "dataset"
    if key != text:
        key = f"{key[:80]}-{hashlib.sha256(text.encode()).hexdigest()[:6]}"
    return key


def model_dir_url(out_url: str, dataset: str) -> str:
    """`<out>/<dataset>/model`, the storage layout's model folder."""
    return layout.model_dir(out_url, dataset)


def training_summary(dataset: str, status: str, reason: str, card: dict[str, Any] | None, model_dir: str) -> dict[str, Any]:
    """The small, JSON-able record of one dataset's training that flows pass around."""
    card = card or {}
    metrics = card.get("metrics") or {}
    return {
        "dataset": dataset,
        "status": status,
        "reason": reason,
        "model_dir": model_dir,
        "model_id": card.get("model_id"),
        "steps": card.get("steps"),
        "resumed_from": card.get("resumed_from"),
        "num_images": card.get("num_images"),
        "skipped_images": card.get("skipped_images"),
        "images_per_second": metrics.get("images_per_second"),
        "seconds": metrics.get("seconds"),
        "metrics": {k: v for k, v in metrics.items() if k not in ("images_per_second", "seconds")},
        "samples": join_url(model_dir, card["files"]["samples"]) if card.get("files", {}).get("samples") else None,
    }

# Training tasks carry this tag. A tag concurrency limit of that name
# (`prefect concurrency-limit create gpu 1`) caps how many trainings run at once; see README.
GPU_TAG = "gpu"


def retry_on_transient_errors(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry what may pass on its own (timeouts, throttling, 5xx;
    `fsio.is_transient`), fail at once on a missing file, a bad argument or bad data."""
    error = state.result(raise_on_failure=False)
    return isinstance(error, BaseException) and is_transient(error)


# The options of every task that does storage or API I/O: retried, with growing delays, only
# on transient errors; never cached (the tasks write, and inputs do not identify outputs).
IO_TASK = {"retries": 3, "retry_delay_seconds": [2, 10, 30], "retry_condition_fn": retry_on_transient_errors,
           "cache_policy": NO_CACHE}
