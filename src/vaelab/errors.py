"""Exceptions with one-line messages that say what went wrong and what to do.

Every error vaelab raises on bad input derives from :class:`VaelabError`; the CLI prints its
message on one line and exits with status 2. They also derive from the matching built-in
(``ValueError``, ``FileNotFoundError``, ...) so library users can catch the usual types.
"""


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
