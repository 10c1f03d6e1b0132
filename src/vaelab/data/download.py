"""Getting data files: found in ``--data-dir`` / ``$VAELAB_DATA``, or fetched by a checked download
(a temp file beside the target, verified, then renamed into place, so a failed or wrong download
never leaves a file a loader would trust)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..errors import DataError, DataNotFoundError
from ..progress import bar

ENV = "VAELAB_DATA"


def find_data_file(name: str, data_dir: str | Path | None, advice: str, subdir: str = "") -> Path:
    """``name`` in ``data_dir``, else in ``$VAELAB_DATA`` (each also under ``subdir``/ when given).

    Raises:
        DataNotFoundError: naming where it looked, followed by ``advice`` (how to get the file).
    """
    dirs = [Path(d) for d in (data_dir, os.environ.get(ENV)) if d]
    for d in dirs:
        for p in (d / subdir / name, d / name) if subdir else (d / name,):
            if p.is_file():
                return p
    where = ", ".join(str(d) for d in dirs) or f"nowhere (no --data-dir and ${ENV} unset)"
    also = f", and their {subdir}/ folders" if subdir else ""
    raise DataNotFoundError(f"{name} not found (looked in {where}{also}); {advice}")


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_sha256(path: Path, expected: str) -> None:
    """Raises DataError (one line) unless ``path``'s SHA-256 is ``expected``."""
    digest = sha256_of(path)
    if digest != expected:
        raise DataError(
            f"{path}: sha256 {digest[:16]}... is not the expected {expected[:16]}...; the file is corrupt "
            "or a different version: re-download it"
        )


def checked_file(name: str, data_dir: str | Path | None, sha256: str, advice: str) -> Path:
    """:func:`find_data_file` followed by :func:`check_sha256`.

    Raises:
        DataNotFoundError: the file is in neither folder (``advice`` says how to get it).
        DataError: its checksum is wrong.
    """
    path = find_data_file(name, data_dir, advice)
    check_sha256(path, sha256)
    return path


def download_verified(url: str, target: Path, verify: Callable[[Path], None]) -> Path:
    """Fetch ``url`` to ``target`` atomically; ``verify(temp_path)`` raises DataError to reject it.

    Raises:
        DataNotFoundError: the download failed (e.g. offline), naming the URL and the folder.
        DataError: from ``verify``; the partial file is deleted either way.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            size = int(resp.headers.get("Content-Length") or 0) or None
            with bar(total=size, desc=f"downloading {target.name}", unit="B", leave=True) as shown:
                for block in iter(lambda: resp.read(1 << 20), b""):
                    out.write(block)
                    shown.update(len(block))
        verify(Path(tmp))
        os.replace(tmp, target)
        return target
    except OSError as e:
        raise DataNotFoundError(f"could not download {url} ({e}); copy {target.name} into {target.parent} by hand") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
