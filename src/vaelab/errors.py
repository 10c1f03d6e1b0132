"""Exceptions with one-line messages that say what went wrong and what to do.

Every error vaelab raises on bad input derives from :class:`VaelabError`; the CLI prints its
message on one line and exits with status 2. They also derive from the matching built-in
(``ValueError``, ``FileNotFoundError``, ...) so library users can catch the usual types.
"""

import contextlib
import re


class VaelabError(Exception):
    """Base class of vaelab's user-facing errors."""


class ConfigError(VaelabError, ValueError):
    """A config key is unknown, has the wrong type, or an invalid value."""


class DataError(VaelabError, ValueError):
    """Data has the wrong shape, non-finite values, or values outside the likelihood's support."""


class DataNotFoundError(VaelabError, FileNotFoundError):
    """A data file could not be found locally (and was not downloaded)."""


class CheckpointError(VaelabError, RuntimeError):
    """A checkpoint or run directory is missing, unreadable or incompatible."""


class TrainingDivergedError(VaelabError, RuntimeError):
    """The loss became NaN/inf; the last good checkpoint was kept."""


class RunInUseError(VaelabError, RuntimeError):
    """Another process is training into the same run directory."""


class TrainingInterrupted(VaelabError):
    """SIGINT/SIGTERM stopped training after a step; last.pt holds that step (resume with --resume)."""


EXIT_ERROR = 2  # the CLI's status for a VaelabError
EXIT_STOPPED = 75  # sysexits.h EX_TEMPFAIL: stopped cleanly by SIGINT/SIGTERM, last.pt current; --resume it
EXIT_ABORTED = 130  # 128 + SIGINT: a second signal aborted at once; last.pt is the last checkpoint written


@contextlib.contextmanager
def sizes_that_fit(what: str, hint: str):
    """Allocation failures inside (``MemoryError``, torch's "can't allocate memory" on the CPU and
    "out of memory" on a GPU) become one :class:`ConfigError`: ``{what} does not fit in memory
    (N GB asked); {hint}``. Sizes come from the configuration, so the fix is there."""
    try:
        yield
    except (MemoryError, RuntimeError) as e:
        text = str(e)
        if not isinstance(e, MemoryError) and "can't allocate memory" not in text and "out of memory" not in text:
            raise
        asked = re.search(r"allocate (\d+) bytes", text)
        size = f" ({int(asked.group(1)) / 2**30:.1f} GiB asked)" if asked else ""
        raise ConfigError(f"{what} does not fit in memory{size}; {hint}") from None
