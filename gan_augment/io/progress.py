"""Progress of long work: a tqdm bar on a terminal, periodic log lines elsewhere (a scheduled
flow's log, a CI job), so both people and log collectors see how far a run is."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("gan_augment")


class Progress:
    """Report how much of some work is done.

    Args:
        what: the title, e.g. "train cats" or "scan s3://lake".
        unit: what is counted, e.g. "step", "obj".
        total: the amount of work, if known.
        initial: where the count starts (a resumed run).
        log_interval: without a terminal, the least seconds between two log lines (the last
            update is always logged); 0 logs every update.
        enabled: False reports nothing (e.g. on non-zero ranks of a distributed run).
    """

    def __init__(self, what: str, unit: str, *, total: int | None = None, initial: int = 0,
                 log_interval: float = 10.0, enabled: bool = True) -> None:
        self.what, self.unit, self.total, self.done = what, unit, total, initial
        self.log_interval, self.enabled, self.last_log, self.bar = log_interval, enabled, time.monotonic(), None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=what, unit=unit, dynamic_ncols=True)

    def __call__(self, done: int, total: int | None = None) -> None:
        """The callback form `progress(done, total)` that long library calls accept."""
        self.update(done, total)

    def update(self, done: int, total: int | None = None, postfix: str = "") -> None:
        """Set the amount done so far (absolute), with an optional status text."""
        self.done, self.total = done, total if total is not None else self.total
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.n = done
            if postfix:
                self.bar.set_postfix_str(postfix, refresh=False)
            self.bar.refresh()
            return
        finished = self.total is not None and done >= self.total
        if self.enabled and (finished or time.monotonic() - self.last_log >= self.log_interval):
            self.last_log = time.monotonic()
            total_text = self.total if self.total is not None else "?"
            log.info("%s: %d/%s %s%s", self.what, done, total_text, self.unit, f" {postfix}" if postfix else "")

    def advance(self, count: int = 1) -> None:
        self.update(self.done + count)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
