"""Graceful stops: SIGINT (Ctrl-C) or SIGTERM (a scheduler's notice) ends training after the
current optimizer step with a checkpoint, instead of losing everything since the last one.

The first signal only sets a flag that the loop reads after each step; the loop then writes
last.pt (mid-epoch if need be) and raises :class:`~vaelab.errors.TrainingInterrupted`, which the
CLI turns into exit status 75 (``vaelab.errors.EXIT_STOPPED``: resume with ``--resume``). A second signal
raises ``KeyboardInterrupt`` at once (exit status 130, ``EXIT_ABORTED``): for a step that hangs.

A signal whose disposition is "ignore" when training starts stays ignored. POSIX shells start
background jobs (``cmd &`` without job control, ``nohup``) with SIGINT ignored so that a Ctrl-C at the
terminal does not reach them, and Python keeps that disposition; vaelab does the same, so only SIGTERM
(or whatever the launcher left handled) stops such a run. On exit the dispositions found on entry are
restored exactly.
"""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """Context manager: while active, SIGINT/SIGTERM set :attr:`signum` instead of interrupting.

    A signal inherited as ignored (``SIG_IGN``) is left ignored. Outside the main thread (where
    Python cannot install handlers) it does nothing.
    """

    def __init__(self):
        self.signum: int | None = None
        self._old: dict = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            ignored = {s for s in SIGNALS if signal.getsignal(s) is signal.SIG_IGN}
            self._old = {s: signal.signal(s, self._handle) for s in SIGNALS if s not in ignored}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._old.items():
            if handler is not None:  # None: a handler installed outside Python, which Python cannot reinstall
                signal.signal(s, handler)
        self._old = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: aborted")
        self.signum = signum
