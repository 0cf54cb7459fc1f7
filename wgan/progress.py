"""How a run shows that it moves: a tqdm bar on a terminal, log lines (losses, it/s, time left)
elsewhere (a batch job's log), and progress lines inside work that is only slow (a huge n_critic).
"""
from __future__ import annotations

import logging
import math
import sys
import time
from typing import Iterable, Iterator, TypeVar

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

log = logging.getLogger(__name__)

PROGRESS_SECONDS = 10.0  # between the progress lines of one long piece of work
SHOWN = ("critic_loss", "generator_loss", "wasserstein")

T = TypeVar("T")


def progress(items: Iterable[T], total: int, what: str) -> Iterator[T]:
    """`items`, logging how many are done every PROGRESS_SECONDS: input that is only slow shows it moves."""
    started = shown = time.monotonic()
    for done, item in enumerate(items):
        now = time.monotonic()
        if now - shown >= PROGRESS_SECONDS:
            log.info("%s: %d of %d done, %.4g/s", what, done, total, done / (now - started))
            shown = now
        yield item


class TrainingProgress:
    """The iterations of a run from `step` to `total`: a bar on a terminal, else a line per report."""

    def __init__(self, total: int, step: int, elapsed: float) -> None:
        self.total = total
        self.interactive = sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=step, disable=not self.interactive, dynamic_ncols=True, unit="it")
        self.window = (step, elapsed)  # it/s over training time alone: evaluations are no iterations

    def __enter__(self) -> TrainingProgress:
        self.bar.__enter__()
        self.redirect = logging_redirect_tqdm()
        self.redirect.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.redirect.__exit__(*exc)
        self.bar.__exit__(*exc)

    def advance(self) -> None:
        self.bar.update()

    def rate(self, step: int, elapsed: float) -> float:
        """Iterations per second of training time since the last call."""
        window_step, window_elapsed = self.window
        self.window = (step, elapsed)
        return (step - window_step) / max(elapsed - window_elapsed, 1e-9)

    def report(self, step: int, values: dict[str, float]) -> None:
        shown = {k: values[k] for k in SHOWN if k in values}
        if self.interactive:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()}, refresh=False)
            return
        remaining = (self.total - step) / max(values["it_per_s"], 1e-9)
        log.info(
            "iter %d/%d | %s | %.1f it/s | eta %s",
            step,
            self.total,
            " ".join(f"{k}={v:.4g}" for k, v in shown.items()),
            values["it_per_s"],
            time.strftime("%H:%M:%S", time.gmtime(remaining)) if math.isfinite(remaining) else "?",
        )
