"""One convention for showing what takes time (docs/design.md, "Progress").

On a terminal every long operation draws a tqdm bar with its ETA; off a terminal (a log file, CI, a
notebook's captured stderr) tqdm draws nothing (its ``disable=None``), so logs hold only the lines the
operation prints itself; under :func:`quiet` (the CLI's ``--quiet``) nothing is drawn anywhere. Under
torchrun only rank 0 draws. Bars of inner operations (an IS evaluation inside the evaluation suite)
vanish when done (``leave=False``); the outer bar stays.
"""

from __future__ import annotations

import os
import threading
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


@contextmanager
def quiet(on: bool = True) -> Iterator[None]:
    """Inside the block, no progress bars (``vaelab ... --quiet``)."""
    old, _quiet[0] = _quiet[0], on or _quiet[0]
    try:
        yield
    finally:
        _quiet[0] = old


def is_quiet() -> bool:
    return _quiet[0] or int(os.environ.get("RANK", "0")) != 0


def bar(iterable: Iterable | None = None, *, total: float | None = None, desc: str = "", unit: str = "it",
        leave: bool = False, show: bool | None = None) -> tqdm:  # fmt: skip
    """A tqdm bar under the convention above; ``show=False`` forces it off (``verbose=0``)."""
    off = True if (show is False or is_quiet()) else None  # None: tqdm decides, on for a TTY only
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=off, dynamic_ncols=True)
