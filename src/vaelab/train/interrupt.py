"""Graceful stops: SIGINT (Ctrl-C) or SIGTERM (a scheduler's notice) ends training after the
current optimizer step with a checkpoint, instead of losing everything since the last one.

The first signal only sets a flag that the loop reads after each step; the loop then writes
last.pt (mid-epoch if need be) and raises :class:`~vaelab.errors.TrainingInterrupted`, which the
CLI turns into exit status 75 (``vaelab.errors.EXIT_STOPPED``: resume with ``--resume``). A second signal
raises ``KeyboardInterrupt`` at once (exit status 130, ``EXIT_ABORTED``): for a step that hangs.
"""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Context manager: while active, SIGINT/SIGTERM set :attr:`signum` instead of interrupting.

    Outside the main thread (where Python cannot install handlers) it does nothing.
    """

    def __init__(self):
        self.signum: int | None = None
        self._old: dict = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)
        self._old = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: aborted")
        self.signum = signum
