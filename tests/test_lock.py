"""One training process per run directory: a second one is refused; a killed one's lock is taken over."""

import signal
import subprocess
import sys

import pytest
from conftest import tiny_config as tiny

from vaelab.cli import main
from vaelab.errors import RunInUseError
from vaelab.train import fit
from vaelab.train.lock import run_lock

HOLDER = (
    "import sys, time; from pathlib import Path; from vaelab.train.lock import run_lock\n"
    "with run_lock(Path(sys.argv[1])):\n    print('locked', flush=True)\n    time.sleep(120)\n"
)


def hold(run_dir):
    run_dir.mkdir(parents=True, exist_ok=True)
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


@pytest.mark.slow
@pytest.mark.subprocess
def test_second_process_is_refused_and_a_killed_holder_is_taken_over(tmp_path, capsys):
    run = tmp_path / "r"
    holder = hold(run)
    try:
        with pytest.raises(RunInUseError, match=f"being trained by process {holder.pid} on "):
            fit(tiny(), run, quiet=True, tensorboard=False)
        assert not (run / "metrics.csv").exists()  # refused before writing anything
        assert main(["train", "--epochs", "1", "--out", str(run), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and f"process {holder.pid}" in err and "\n" not in err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    with pytest.warns(UserWarning, match=f"took over the lock of process {holder.pid}"):
        res = fit(tiny(), run, quiet=True, tensorboard=False)
    assert len(res.history) == tiny().train.epochs
    assert (run / ".lock").read_text() == ""  # released, and not stale for the next start
    fit(tiny(**{"train.epochs": tiny().train.epochs + 1}), run, resume=True, quiet=True, tensorboard=False)


def test_lock_is_held_only_inside_the_block(tmp_path):
    with run_lock(tmp_path):
        with pytest.raises(RunInUseError):  # a second holder in the same process is refused too
            with run_lock(tmp_path):
                pass
    with run_lock(tmp_path):
        pass
