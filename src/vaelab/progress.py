"""One convention for showing what takes time (docs/design.md, "Progress").

On a terminal every long operation draws a tqdm bar with its ETA; off a terminal (a batch job's log,
CI, a notebook's captured stderr) it writes plain lines instead (:class:`LogLines`): one when both 5 %
of the work and 30 s have passed since the last (whichever is rarer), and one at the end of a long
operation — a short one stays silent. Under :func:`quiet` (the CLI's ``--quiet``) nothing is shown
anywhere. Under torchrun only rank 0 shows progress. Bars of inner operations (an IS evaluation inside the evaluation suite)
vanish when done (``leave=False``); the outer bar stays.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

try:  # in Jupyter, tqdm.auto draws widgets with ipywidgets; without it, it warns on every import
    import ipywidgets  # noqa: F401
    from tqdm.auto import tqdm
except ImportError:
    from tqdm.std import tqdm

_quiet = [False]
# tqdm's default lock includes a multiprocessing semaphore, which spawned workers (studies, sweeps)
# leak at exit ("resource_tracker: leaked semaphore"); bars are drawn by one thread of one process
tqdm.set_lock(threading.RLock())


#: set while quiet, so that worker processes a study or sweep spawns are quiet too
QUIET_ENV = "VAELAB_QUIET"


@contextmanager
def quiet(on: bool = True) -> Iterator[None]:
    """Inside the block, no progress bars or progress lines (``vaelab ... --quiet``), in this process
    and in the processes it starts."""
    old, _quiet[0] = _quiet[0], on or _quiet[0]
    old_env = os.environ.get(QUIET_ENV)
    if _quiet[0]:
        os.environ[QUIET_ENV] = "1"
    try:
        yield
    finally:
        _quiet[0] = old
        if old_env is None:
            os.environ.pop(QUIET_ENV, None)
        else:
            os.environ[QUIET_ENV] = old_env


def is_quiet() -> bool:
    return _quiet[0] or os.environ.get(QUIET_ENV) == "1" or int(os.environ.get("RANK", "0")) != 0


def bar(iterable: Iterable | None = None, *, total: float | None = None, desc: str = "", unit: str = "it",
        leave: bool = False, show: bool | None = None):  # fmt: skip
    """A tqdm bar on a terminal, :class:`LogLines` off one, nothing under :func:`quiet` or ``show=False``
    (``verbose=0``)."""
    if show is False or is_quiet():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=True)
    if not sys.stderr.isatty():
        return LogLines(iterable, total=total, desc=desc, unit=unit)
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True)


class LogLines:
    """Progress for a log file: ``desc: 35% (350/1000 pt), 2.1 min, about 3.9 min left`` on stderr when
    at least ``every_fraction`` of the work and ``every_s`` seconds have passed since the last line, and
    ``desc: done, 1000 pt in 6.0 min`` at the end if any line was written. The part of tqdm's interface
    vaelab uses (``update``, ``write``, ``set_postfix``, ``close``, iteration, ``with``)."""

    def __init__(self, iterable: Iterable | None = None, *, total: float | None = None, desc: str = "",
                 unit: str = "it", every_s: float = 30.0, every_fraction: float = 0.05):  # fmt: skip
        self.iterable, self.desc, self.unit = iterable, desc, unit
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total, self.n, self.postfix = total, 0.0, ""
        self.every_s, self.every_fraction = every_s, every_fraction
        self.t0 = self.last_t = time.perf_counter()
        self.last_n, self.lines = 0.0, 0

    def __iter__(self):
        for item in self.iterable or ():
            yield item
            self.update(1)
        self.close()

    def __enter__(self) -> LogLines:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.perf_counter()
        enough = not self.total or (self.n - self.last_n) >= self.every_fraction * self.total
        if now - self.last_t >= self.every_s and enough:
            self.last_t, self.last_n = now, self.n
            self._line(self._progress(now))

    def _progress(self, now: float) -> str:
        took = now - self.t0
        if not self.total:
            return f"{self.n:g} {self.unit}, {_minutes(took)}"
        left = took * (self.total - self.n) / self.n if self.n else 0.0
        pct = 100 * self.n / self.total
        return f"{pct:.0f}% ({self.n:g}/{self.total:g} {self.unit}), {_minutes(took)}, about {_minutes(left)} left"

    def _line(self, text: str) -> None:
        self.lines += 1
        print(f"{self.desc}: {text}{self.postfix}", file=sys.stderr, flush=True)

    def set_postfix(self, refresh: bool = True, **values) -> None:
        self.postfix = "; " + ", ".join(f"{k} {v}" for k, v in values.items()) if values else ""

    def write(self, text: str) -> None:
        print(text, flush=True)  # stdout, as tqdm.write

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        if self.lines:  # a long operation says it ended; a short one stays silent
            self._line(f"done, {self.n:g} {self.unit} in {_minutes(time.perf_counter() - self.t0)}")
            self.lines = 0


def _minutes(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"
