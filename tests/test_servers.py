"""Real servers where users have them (issue 43): a sweep shared by two worker processes through a
PostgreSQL server, as two machines run it, and a run tracked over HTTP by an ``mlflow server``.

Each server is started by its fixture on a loopback port in a temporary directory and stopped after.
A server whose binaries are missing is a skip that says what to install (``.ci/run`` installs them
where it can); everything else about these tests is the suite's usual contract.
"""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_bin(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server (Debian's package) on a loopback port; yields its SQLAlchemy URL."""
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed: apt-get install postgresql")
    pytest.importorskip("psycopg", reason="PostgreSQL's Python driver: pip install 'vaelab[postgresql]'")
    root = Path(tempfile.mkdtemp(prefix="vaelab-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: the server runs as Debian's postgres user
        import pwd

        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)
        os.chmod(root, 0o700)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "vaelab", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)  # fmt: skip
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql://vaelab@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


SPACE = """
["train.lr"]
distribution = "log-uniform"
low = 1e-3
high = 1e-2
["model.latent.dim"]
distribution = "int"
low = 1
high = 3
"""


def test_two_machines_share_a_sweep_through_postgresql_and_run_every_trial_once(postgres, tmp_path):
    import optuna

    (tmp_path / "space.toml").write_text(SPACE)
    base = ["--set", "train.epochs=1", "--set", "data.n_train=300", "--hidden", "8", "--set", "train.diagnostics=false"]

    def machine(name: str) -> subprocess.Popen:  # the same command on each machine, its own --out
        argv = ["sweep", "--space", str(tmp_path / "space.toml"), "--trials", "3", "--storage", postgres,
                "--study", "shared", "--out", str(tmp_path / name), "--compare-best", "0", "--pruner", "none",
                "--quiet", *base]  # fmt: skip
        return subprocess.Popen(
            [sys.executable, "-m", "vaelab", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    runs = [machine("a"), machine("b")]
    for p in runs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert "Traceback" not in err and "[I " not in err  # no Optuna INFO lines
    storage = optuna.storages.RDBStorage(postgres.replace("postgresql://", "postgresql+psycopg://"))
    trials = optuna.load_study(study_name="shared", storage=storage).get_trials()
    storage.engine.dispose()  # (its pooled connections closed now, not by the garbage collector)
    assert sorted(t.number for t in trials) == list(range(6))  # none lost, none run twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    dirs = [Path(t.user_attrs["run_dir"]) for t in trials]
    assert len(set(dirs)) == 6 and all((d / "last.pt").is_file() for d in dirs)
    assert {d.parent.name for d in dirs} == {"a", "b"}  # both machines trained trials
    # each machine's report lists the study's trials as they stood when it finished; the later one, all six
    done = [(tmp_path / name / "sweep.md").read_text().count("| complete |") for name in ("a", "b")]
    assert min(done) >= 3 and max(done) == 6


@pytest.fixture(scope="module")
def mlflow_server():
    """``mlflow server`` on a loopback port with a SQLite store; yields its URL."""
    pytest.importorskip("flask", reason="mlflow server needs Flask: pip install mlflow (or the test extras)")
    exe = Path(sys.executable).with_name("mlflow")
    if not exe.is_file():
        pytest.skip("the mlflow command is not installed: pip install mlflow")
    root, port = Path(tempfile.mkdtemp(prefix="vaelab-mlflow-")), _free_port()
    store, artifacts = f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts")
    cmd = [str(exe), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--backend-store-uri", store, "--artifacts-destination", artifacts]  # fmt: skip
    log = open(root / "server.log", "w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        import urllib.request

        for _ in range(120):  # its first start builds the database: seconds
            if server.poll() is not None:
                pytest.fail(f"mlflow server exited: {(root / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not answer within 60 s")
        yield url
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def test_a_run_tracked_over_http_reads_back_with_mlflows_client(mlflow_server, tmp_path, monkeypatch):
    import mlflow

    from vaelab import RunConfig, fit

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    cfg = RunConfig().override({
        "data.n_train": 200, "model.latent.dim": 2, "model.encoder.hidden": [8], "train.epochs": 2,
        "train.batch_size": 50, "train.trackers": ["mlflow"], "train.tracking_uri": mlflow_server,
        "train.experiment": "over-http",
    })  # fmt: skip
    res = fit(cfg, tmp_path / "run", quiet=True)
    client = mlflow.tracking.MlflowClient(mlflow_server)
    run = client.get_run(res.tracked["mlflow"]["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["model.latent.dim"] == "2"
    history = client.get_metric_history(run.info.run_id, "valid_elbo")
    assert [(m.step, m.value) for m in history] == [(r["step"], r["valid_elbo"]) for r in res.history]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"config.toml", "run.json", "metrics.csv"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written beside the run (no ./mlruns)
