"""Small helpers every flow shares: parameter checks, credentials from a block, artifact keys
and run summaries."""

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
                "Prefect database, so name a prefect-aws AwsCredentials block in credentials_block, or give "
                "the worker its credentials in its environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
                "AWS_PROFILE, or an IAM role)"
            )
    return storage_options


def resolve_storage_options(storage_options: dict[str, Any] | None,
                            credentials_block: str | None) -> dict[str, Any] | None:
    """The fsspec options a flow's tasks use: `storage_options` (checked to hold no credential)
    with, when `credentials_block` names a prefect-aws `AwsCredentials` block, its credentials.

    Call it in the flow body, on the worker: only the block's name travels in parameters (of
    this run and of the runs it starts); the secrets are loaded into this process and go no
    further than the storage calls, never into parameters, logs or artifacts. Options given in
    `storage_options` win over the block's (`client_kwargs` are merged).

    Raises:
        ValueError: a credential in `storage_options`, no block of that name, or a block that
            assumes a role (s3fs would not refresh the role's temporary credentials).
        ImportError: prefect-aws is not installed where the flow runs.
    """
    check_storage_options(storage_options)
    if not credentials_block:
        return storage_options
    options = s3fs_options(load_aws_credentials(credentials_block), credentials_block)
    for name, value in (storage_options or {}).items():
        both = name == "client_kwargs" and isinstance(value, dict)
        options[name] = {**options.get(name, {}), **value} if both else value
    return options


def load_aws_credentials(name: str) -> Any:
    """The prefect-aws `AwsCredentials` block called `name` (Prefect's client retries the API call)."""
    try:
        from prefect_aws import AwsCredentials
    except ImportError:
        raise ImportError(f"credentials_block={name!r} needs prefect-aws where the flow runs: "
                          "pip install 'gan-augment[aws]' on the worker") from None
    try:
        return AwsCredentials.load(name)
    except ValueError as exc:
        raise ValueError(f"no AwsCredentials block named {name!r} ({exc}); create it in the UI (Blocks) or with "
                         "AwsCredentials(...).save(name), see README") from None


def s3fs_options(credentials: Any, name: str) -> dict[str, Any]:
    """s3fs's options for what an `AwsCredentials` block holds (keys, session token, profile,
    region, and its client parameters' endpoint, TLS settings)."""
    if credentials.assume_role_arn:
        raise ValueError(f"AwsCredentials block {name!r} assumes a role; s3fs cannot refresh a role's temporary "
                         "credentials during a long run, so give the worker that role (its environment or instance "
                         "profile) or give the block keys or a profile")
    secret = credentials.aws_secret_access_key
    client = credentials.aws_client_parameters
    found = {"key": credentials.aws_access_key_id, "secret": secret.get_secret_value() if secret else None,
             "token": credentials.aws_session_token, "profile": credentials.profile_name,
             "endpoint_url": client.endpoint_url, "use_ssl": None if client.use_ssl else False}
    options = {name: value for name, value in found.items() if value is not None}
    verify = client.verify_cert_path or (None if client.verify in (None, True) else client.verify)
    client_kwargs = {"region_name": credentials.region_name, "verify": verify}
    if any(value is not None for value in client_kwargs.values()):
        options["client_kwargs"] = {k: v for k, v in client_kwargs.items() if v is not None}
    return options


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
