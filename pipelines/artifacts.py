"""What the flows show in the Prefect UI: markdown reports, tables and training progress.

Builders here are pure (summary dicts in, markdown or rows out), so tests check them without a
server; `TrainingProgress` is the one piece that talks to Prefect while training runs.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prefect.artifacts import create_progress_artifact, update_progress_artifact

from gan_augment.curate.html import png_data_uri  # the report's: a UI that cannot reach a private bucket

log = logging.getLogger(__name__)


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def training_markdown(summary: dict[str, Any], grid_png: bytes | None) -> str:
    """The training report of one dataset: outcome, the final sample grid and the metrics."""
    lines = [
        f"# {summary['dataset']}: {summary['status']}",
        "",
        f"{summary['reason']}.",
        "",
        f"- model: `{summary['model_dir']}` (id `{summary['model_id']}`)",
        f"- images: {_number(summary['num_images'])} used, {_number(summary['skipped_images'])} skipped",
        f"- steps: {_number(summary['steps'])}"
        + (f" (resumed from step {summary['resumed_from']})" if summary.get("resumed_from") else ""),
        f"- speed: {_number(summary['images_per_second'])} img/s over {_number(summary['seconds'])} s",
        "",
    ]
    if grid_png is not None:
        lines += [f"![samples of {summary['dataset']}]({png_data_uri(grid_png)})", ""]
    if summary.get("metrics"):
        lines += ["| metric | final value |", "|---|---|"]
        lines += [f"| {name} | {_number(value, 4)} |" for name, value in sorted(summary["metrics"].items())]
    return "\n".join(lines) + "\n"


class TrainingProgress:
    """A Prefect progress artifact for one training run, updated from the trainer's callback.

    Updates are throttled to one per `min_interval` seconds (a small GPU model logs many rows a
    second), and a failed update is logged, never raised: progress display must not stop a run.
    """

    def __init__(self, key: str, dataset: str, min_interval: float = 2.0) -> None:
        self.dataset, self.min_interval, self.last = dataset, min_interval, 0.0
        try:
            self.artifact_id = create_progress_artifact(0.0, key=key, description=f"training {dataset}")
        except Exception as exc:  # noqa: BLE001 - the display is best-effort by design
            log.warning("could not create the progress artifact of %s: %s", dataset, exc)
            self.artifact_id = None

    def __call__(self, fraction: float, row: dict[str, float]) -> None:
        if time.monotonic() - self.last < self.min_interval:
            return
        description = (f"training {self.dataset}: step {int(row['step'])}, loss_d {row['loss_d']:.3f}, "
                       f"loss_g {row['loss_g']:.3f}, {row['images_per_second']:.0f} img/s")
        self.update(100.0 * fraction, description)

    def update(self, percent: float, description: str) -> None:
        if self.artifact_id is None:
            return
        try:
            update_progress_artifact(self.artifact_id, percent, description=description)
            self.last = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - the display is best-effort by design
            log.warning("could not update the progress artifact of %s: %s", self.dataset, exc)
