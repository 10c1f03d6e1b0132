import json
import subprocess
import sys

import numpy as np
import pytest

from vaelab.cli import main


def test_cli_end_to_end_on_tiny_array_data(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(400, 3))
    np.savetxt(tmp_path / "x.csv", x, delimiter=",")
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f'[data]\nkind = "array"\npath = "{tmp_path / "x.csv"}"\n[model.latent]\nkind = "gaussian"\ndim = 2\n'
        '[model.encoder]\nkind = "mlp"\nhidden = [8]\n'
    )
    run = tmp_path / "run"
    assert (
        main(["train", "--config", str(cfg), "--set", "train.epochs=2", "--batch-size", "50", "--out", str(run), "--quiet"])
        == 0
    )
    assert "validation ELBO" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--epochs", "3", "--quiet"]) == 0
    assert main(["evaluate", str(run), "--k", "20"]) == 0
    ev = json.loads((run / "evaluation_test.json").read_text())
    assert ev["k"] == 20 and ev["n"] == 80 and ev["elbo"] <= ev["iwae"] + 1e-6
    assert main(["sample", str(run), "-n", "10"]) == 0
    assert np.load(run / "samples.npy").shape == (10, 3)
    assert main(["plot", str(run)]) == 0
    assert (run / "curves.png").is_file() and (run / "latent.png").is_file()


@pytest.mark.parametrize(
    "argv, match",
    [
        (["train", "--set", "model.zdim=3"], "unknown config key 'model.zdim'"),
        (["train", "--set", "model.latent.dimm=3"], "unknown option 'model.latent.dimm'"),
        (["train", "--dataset", "array", "--path", "/nonexistent/x.npy"], "data file not found"),
        (["train", "--path", "/nonexistent/x.npy"], "data file not found"),  # a path selects the array loader
        (["train", "--dataset", "mnist", "--path", "x.npy"], "unknown option 'data.path' for data set 'mnist'"),
        (
            ["train", "--latent", "bernoulli", "--prior", "bernoulli", "--likelihood", "bernoulli", "--dataset", "digits"],
            "estimator 'reparam' differentiates through the samples",
        ),
        (["evaluate", "/nonexistent/run"], "run directory not found"),
        (["train", "--dataset", "mnist", "--data-dir", "/nonexistent"], "mnist.pkl.gz not found"),
    ],
)
def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, argv, match, monkeypatch, capsys):
    monkeypatch.delenv("VAELAB_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and match in err


@pytest.mark.subprocess
@pytest.mark.slow
def test_the_command_exits_2_with_one_line_on_stderr(tmp_path):
    """``python -m vaelab`` turns main's status into the process's exit status; stderr holds the one line."""
    argv = [sys.executable, "-m", "vaelab", "evaluate", str(tmp_path / "none")]
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: run directory not found")


def test_every_subcommand_has_help_and_the_pages_it_names_exist(capsys):
    import re
    from pathlib import Path

    root = Path(__file__).parents[1]
    for cmd in ("train", "evaluate", "compare", "sample", "plot", "reproduce", "download", "sweep"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        out = capsys.readouterr().out
        assert e.value.code == 0 and "usage: vaelab " + cmd in out
        for page in re.findall(r"docs/[\w/.-]+\.md", out.replace("\n", "")):
            assert (root / page).is_file(), f"vaelab {cmd} --help names {page}"


@pytest.mark.slow
def test_reproduce_two_gaussians_quick(tmp_path):
    assert main(["reproduce", "two-gaussians", "--quick", "--out", str(tmp_path / "tg")]) == 0
    report = (tmp_path / "tg" / "report.md").read_text()
    res = json.loads((tmp_path / "tg" / "results.json").read_text())["results"]
    for name in ("standard_normal", "mog_fixed", "mog_trainable", "vamp"):  # the report shows what was computed
        assert f"{res[name]['log_px']['mean']:.3f}" in report
        w = res[name]["mode_weights"]
        assert abs(sum(w) - 1) < 1e-6 and f"{w[0]:.3f}" in report
        sg = res[name]["surgery"]  # ELBO surgery per prior: the three terms make the ELBO
        assert sg["reconstruction"] - sg["mutual_info"] - sg["marginal_kl"] == pytest.approx(sg["elbo"], abs=1e-6)
        assert f"{sg['marginal_kl']:.3f}" in report
    assert "VampPrior (50 pseudo-inputs)" in report
    for name in ("data", "standard_normal", "mog_fixed", "mog_trainable", "vamp"):
        assert (tmp_path / "tg" / f"{name}.png").stat().st_size > 10_000
    _check_provenance(tmp_path / "tg", report, runs=4)


def _check_provenance(out, report: str, runs: int) -> None:
    """The report ends with its provenance: the commit that ran, the command, each run's full config."""
    from vaelab.experiments.provenance import git_commit, stamp

    prov = json.loads((out / "provenance.json").read_text())
    assert prov["commit"] == git_commit()[0] and f"commit `{prov['commit']}`" in report
    assert prov["command"].startswith("vaelab reproduce ") and "--quick" in prov["command"]
    assert len(prov["configs"]) == runs and all("train" in c and "model" in c for c in prov["configs"].values())
    assert report.count("## Provenance") == 1 and report.rstrip().endswith("`configs`).")
    stamp(out, prov)  # stamped again (a regenerated report): still one section
    assert (out / "report.md").read_text() == report


@pytest.mark.slow
def test_reproduce_aevb_mnist_quick(tmp_path, data_dir):
    assert main(["reproduce", "aevb-mnist", "--quick", "--data-dir", str(data_dir), "--out", str(tmp_path / "m")]) == 0
    for name in ("latent_2d", "manifold", "generations", "optimizers"):
        assert (tmp_path / "m" / f"{name}.png").stat().st_size > 10_000
    assert "Test NLL" in (tmp_path / "m" / "report.md").read_text()


@pytest.mark.slow
def test_reproduce_iwae_mnist_quick(tmp_path, data_dir):
    out = tmp_path / "iw"
    assert main(["reproduce", "iwae-mnist", "--quick", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    models = json.loads((out / "results.json").read_text())["models"]
    assert models["1layer_vae_k1"]["k"] == 100 and models["1layer_vae_k1"]["n"] == 100
    for m in models.values():  # each row's measured NLL is in the table, beside the paper's; AIS beside IS
        assert f"| {m['label']} | {m['nll']:.2f} |" in report
        assert f"| {m['label']}" in report and f"| {m['ais_log_px']:.2f} |" in report and m["ais_steps"] == 5
    assert (out / "nll_curves.png").stat().st_size > 10_000


@pytest.mark.slow
def test_reproduce_iwae_omniglot_quick(tmp_path, data_dir):
    out = tmp_path / "om"
    assert main(["reproduce", "iwae-omniglot", "--quick", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    models = json.loads((out / "results.json").read_text())["models"]
    assert report.startswith("# IWAE vs VAE on Omniglot") and "Data caveat" in report
    for m in models.values():  # our NLL beside the paper's Omniglot column (IWAE-5: 106.12)
        assert f"| {m['label']} | {m['nll']:.2f} |" in report
    assert models["1layer_iwae_k5"]["paper"][0] == 106.12
    assert "| 106.12 (paper) |" in report and "| 108.11 (paper) |" in report
    refs = data_dir.parent / "REFERENCES.md"  # the status printed is the one shared/REFERENCES.md gives Table 1
    if refs.is_file():
        assert "(IWAE), Table 1 — **paper**" in refs.read_text()
    cfg = (out / "runs" / "1layer_vae_k1" / "config.toml").read_text()
    assert 'kind = "omniglot"' in cfg


@pytest.mark.slow
def test_reproduce_prior_benchmarks_quick(tmp_path, data_dir):
    out = tmp_path / "pb"
    assert main(["reproduce", "prior-benchmarks", "--quick", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    models = json.loads((out / "results.json").read_text())["models"]
    assert len(models) == 9 and len(json.loads((out / "results.json").read_text())["paired"]) == 9
    for m in models.values():
        assert f"| {m['label']} | {m['nll']:.2f} |" in report
    cfg = (out / "runs" / "caltech-silhouettes_vamp" / "config.toml").read_text()
    assert 'kind = "caltech-silhouettes"' in cfg and 'kind = "vamp"' in cfg
    assert (
        "The paper's ordering VampPrior > MoG > N(0, I), each step by more than 3 s.e., in this run: static MNIST: "
        in report
    )


def test_prior_benchmarks_caltech_paper_budget_is_the_authors_protocol():
    """The caltech-paper budget: Caltech only, C = 500, lr 5e-4, warm-up over 100 epochs of 41 steps, early stopping 50."""
    from vaelab.experiments import prior_benchmarks as pb

    jobs, b = pb.jobs_for("caltech-paper"), pb.BUDGETS["caltech-paper"]
    assert [j.overrides["data.kind"] for j in jobs] == ["caltech-silhouettes"] * 3
    assert jobs[2].overrides["model.prior"] == {"kind": "vamp", "components": 500}
    gated = {"kind": "gated_mlp", "hidden": [300, 300]}
    assert b.overrides == {
        "train.lr": 5e-4,
        "train.early_stopping": 50,
        "train.kl_warmup_steps": 4100,
        "model.encoder": gated,
    }
    assert (b.epochs, b.k_is, b.batch_size) == (2000, 5000, 100)
    jobs, b = pb.jobs_for("mnist-paper"), pb.BUDGETS["mnist-paper"]
    assert [j.name for j in jobs] == ["static-mnist_standard_normal", "static-mnist_vamp"]
    assert b.overrides["train.kl_warmup_steps"] == 100 * 500 and b.overrides["model.encoder"] == gated
    assert jobs[1].cost() > 3 * jobs[0].cost()  # the VampPrior's pseudo-inputs: started first
    pairs = [("static MNIST, VampPrior", "static MNIST, N(0, I)", 1.0, 0.2)]
    assert pb._ordering(pairs).endswith("static MNIST: VampPrior − N(0, I) +1.00 ± 0.20 nats: holds.")
    assert pb._ordering([(*pairs[0][:2], 0.5, 0.2)]).endswith("does not hold.")


@pytest.mark.slow
def test_reproduce_vr_bounds_quick(tmp_path, data_dir):
    out = tmp_path / "vr"
    assert main(["reproduce", "vr-bounds", "--quick", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    payload = json.loads((out / "results.json").read_text())
    assert len(payload["models"]) == 9 and len(payload["paired"]) == 9
    for m in payload["models"].values():  # ours beside Li & Turner's Table 2
        assert f"| {m['label']} | {m['log_px']:.2f} | {m['log_px_se']:.2f} |" in report
    assert "| 1380.30 ± 4.60 |" in report and "| -117.21 |" in report and "| 1377.40 ± 4.59 |" in report
    assert 'kind = "vr_max"' in (out / "runs" / "caltech-silhouettes_vr-max_k50" / "config.toml").read_text()
    frey = (out / "runs" / "frey_iwae_k5" / "config.toml").read_text()
    assert 'kind = "frey"' in frey and 'variance = "per_datapoint"' in frey and "n_samples = 5" in frey
    assert "n_samples = 50" in (out / "runs" / "caltech-silhouettes_vae_k50" / "config.toml").read_text()


@pytest.mark.slow
def test_reproduce_vr_bounds_frey_protocol_small(tmp_path, data_dir, monkeypatch):
    """The frey-paper budget, shrunk (2 folds, 6 epochs, patience 2): folds, ablations, the mean over folds
    against Table 2 with its standard error over folds, and early stopping recorded per run."""
    from dataclasses import replace

    from vaelab.experiments import vr_bounds
    from vaelab.experiments import vr_bounds_frey as frey

    monkeypatch.setattr(frey, "FOLDS", 2)
    monkeypatch.setitem(frey.AUTHORS, "train.epochs", 6)
    monkeypatch.setitem(frey.AUTHORS, "train.early_stopping", 2)
    monkeypatch.setitem(frey.ABLATIONS, "200-epochs", ("3 epochs", {"train.epochs": 3, "train.early_stopping": 0}))
    monkeypatch.setitem(vr_bounds.BUDGETS, "frey-paper", replace(frey.BUDGET, k_is=20, workers=1))
    out = tmp_path / "frey"
    assert main(["reproduce", "vr-bounds", "--budget", "frey-paper", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    report, models = (out / "report.md").read_text(), json.loads((out / "results.json").read_text())["models"]
    assert len(models) == 3 + 2 + 6 and "## Provenance" in report
    vae = [models[f"fold{f}_vae"]["log_px"] for f in range(2)]
    m, se = sum(vae) / 2, abs(vae[0] - vae[1]) / 2  # s.e. over 2 folds: |a - b| / 2
    assert f"| VAE K=5 | {m:.2f} ± {se:.2f} | 2 | 1322.96 ± 10.03 |" in report
    assert models["ablation_200-epochs_vae"]["epochs_trained"] == 3 and models["fold0_vae"]["epochs_trained"] <= 6
    cfg = (out / "runs" / "ablation_floor_vae" / "config.toml").read_text()
    assert "min_logvar = -9.0" in cfg and 'mean = "sigmoid"' in cfg and "fold = 0" in cfg
    assert "min_logvar = -inf" in (out / "runs" / "fold1_iwae" / "config.toml").read_text()
    assert "weight_decay = 0.0001256" in (out / "runs" / "ablation_weight-prior_vae" / "config.toml").read_text()
    assert "adam_beta2 = 0.99\n" in (out / "runs" / "ablation_adam-beta2_vae" / "config.toml").read_text()
    paper = {t: vr_bounds.PAPER[("frey", 5, t)] for t in vr_bounds.OBJECTIVE} | {"source": vr_bounds.SOURCE}
    frey.rebuild(out, paper, wall=60.0, budget=replace(frey.BUDGET, k_is=20))  # from the run directories alone
    again = (out / "report.md").read_text()
    assert f"| VAE K=5 | {m:.2f} ± {se:.2f} | 2 | 1322.96 ± 10.03 |" in again
    assert again.split("Mean over folds")[1].strip() == report.split("## Provenance")[0].split("Mean over folds")[1].strip()


@pytest.mark.slow
def test_reproduce_vr_bounds_frey_ablations_small(tmp_path, data_dir, monkeypatch):
    """The frey-ablations budget, shrunk to 3 epochs: fold 0's VAE and IWAE, each with the weight prior, the VAE
    with Adam beta2 = 0.99, each paired with its baseline on the same frames."""
    from dataclasses import replace

    from vaelab.experiments import vr_bounds_frey as frey

    monkeypatch.setitem(frey.AUTHORS, "train.epochs", 3)
    monkeypatch.setattr(frey, "ABLATION_BUDGET", replace(frey.ABLATION_BUDGET, k_is=20, workers=1))
    out = tmp_path / "frey"
    assert (
        main(["reproduce", "vr-bounds", "--budget", "frey-ablations", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    )
    report, payload = (out / "report.md").read_text(), json.loads((out / "results.json").read_text())
    assert set(payload["models"]) == {"fold0_vae", "fold0_iwae", "ablation_weight-prior_vae", "ablation_weight-prior_iwae",
                                      "ablation_adam-beta2_vae"}  # fmt: skip
    a, c, d, se = payload["paired"][0]
    assert c == "VAE K=5, fold 0" and f"| {a} − {c} | {d:+.2f} | {se:.2f} |" in report
    assert payload["paired"][1][1] == "IWAE K=5, fold 0" and "1322.96 ± 10.03" in report


@pytest.mark.slow
def test_reproduce_flows_mnist_quick(tmp_path, data_dir):
    out = tmp_path / "flows"
    assert main(["reproduce", "flows-mnist", "--quick", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    payload = json.loads((out / "results.json").read_text())
    assert len(payload["models"]) == 4 and len(payload["paired"]) == 3
    for m in payload["models"].values():
        assert f"| {m['label']} | {m['log_px']:.2f} | {m['log_px_se']:.2f} | {m['elbo']:.2f} | {m['gap']:.2f} |" in report
    assert "| planar, 40 steps |" in report  # K means importance samples only
    assert "| ≤ 89.9 (third-party) |" in report and "| ≤ 85.7 (unverified) |" in report  # shared/REFERENCES.md
    assert all(m["iwae_k"] == min(64, m["k"]) for m in payload["models"].values())  # the bound the log line names
    assert 'kind = "iaf"' in (out / "runs" / "iaf2" / "config.toml").read_text()


@pytest.mark.slow
def test_reproduce_flows_mnist_kl_anneal_ablation(tmp_path, data_dir, monkeypatch):
    """The kl-anneal budget, shrunk to the quick budget's size: four runs, the annealed ones warmed up over
    WARMUP_STEPS (beta logged below 1 early on), each difference paired over the same test images."""
    from dataclasses import replace

    from vaelab.experiments import flows_anneal, flows_mnist
    from vaelab.experiments._study import QUICK

    monkeypatch.setitem(flows_mnist.BUDGETS, "kl-anneal", replace(QUICK, name="kl-anneal", n_train=1000))
    monkeypatch.setattr(flows_anneal, "WARMUP_STEPS", 8)
    out = tmp_path / "anneal"
    assert main(["reproduce", "flows-mnist", "--budget", "kl-anneal", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    payload, report = json.loads((out / "results.json").read_text()), (out / "report.md").read_text()
    assert set(payload["models"]) == {"planar10", "planar10_anneal", "gaussian", "gaussian_anneal"}
    assert "kl_warmup_steps = 8" in (out / "runs" / "planar10_anneal" / "config.toml").read_text()
    assert "kl_warmup_steps = 0" in (out / "runs" / "planar10" / "config.toml").read_text()
    (dl, sl) = payload["paired"]["planar10_anneal − planar10"]["log_px"]
    assert f"| planar, 10 steps, KL annealed − planar, 10 steps | {dl:+.3f} ± {sl:.3f} |" in report
    assert len(payload["paired"]) == 4 and "Rezende & Mohamed" in report


@pytest.mark.slow
def test_reproduce_semi_supervised_mnist_quick(tmp_path, data_dir):
    out = tmp_path / "ssl"
    assert main(["reproduce", "semi-supervised-mnist", "--quick", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    payload = json.loads((out / "results.json").read_text())
    assert set(payload["models"]) == {"m1", "m2-100-s0", "m1m2-100-s0"} and payload["commit"]
    m2 = payload["models"]["m2-100-s0"]
    assert f"| M2 | {100 * m2['test_error']:.2f} |" in report and "| 11.97 ± 1.71 (third-party; ± unverified) |" in report
    assert 'kind = "encoded"' in (out / "runs" / "m1m2-100-s0" / "config.toml").read_text()
    from vaelab.experiments.semi_supervised_mnist import add_ablation

    add_ablation(out, out / "runs" / "m2-100-s0", "the same run again", "vaelab train ...", str(data_dir))
    again = json.loads((out / "results.json").read_text())["ablation"]["m2-100-s0"]
    assert again["test_error"] == m2["test_error"] and again["label_use_nats"] == pytest.approx(m2["label_use_nats"])
    assert "| the same run again |" in (out / "report.md").read_text()


def test_a_semi_supervised_run_evaluates_samples_a_class_and_plots_the_class_grid(tmp_path, data_dir, capsys):
    run = str(tmp_path / "m2")
    sets = ["model.labels=semi-supervised", "data.labelled=50", "train.labelled_batch=10", "train.batch_size=50"]
    argv = ["train", "--dataset", "digits", "--data-dir", str(data_dir), "--epochs", "2", "--out", run, "--quiet"]
    assert main([*argv, "--likelihood", "bernoulli", *[a for s in sets for a in ("--set", s)]]) == 0
    assert "; classifier validation error " in capsys.readouterr().out  # M2's final line (issue 43)
    assert main(["evaluate", run, "--k", "10", "--limit", "30", "--data-dir", str(data_dir)]) == 0
    assert "classifier q(y|x): error" in capsys.readouterr().out
    assert main(["sample", run, "--label", "3", "-n", "4"]) == 0
    assert main(["sample", run, "--label", "10", "-n", "4"]) == 2
    assert "--label must be a class in 0..9" in capsys.readouterr().err
    labelled = (tmp_path / "m2" / "samples_label3.png").read_bytes()
    assert main(["plot", run, "--data-dir", str(data_dir)]) == 0
    assert (tmp_path / "m2" / "classes.png").is_file()
    assert (tmp_path / "m2" / "samples_label3.png").read_bytes() == labelled  # plot's samples.png is another file


def test_train_without_a_validation_split(tmp_path, data_dir, capsys):
    """Frey faces have no validation split by default (Li & Turner): the summary says so."""
    argv = ["train", "--dataset", "frey", "--data-dir", str(data_dir), "--epochs", "1", "--out", str(tmp_path / "f")]
    with pytest.warns(UserWarning, match="validation set is empty"):
        assert main([*argv, "--quiet", "--set", 'model.likelihood={kind="gaussian", variance="per_dim"}']) == 0
    assert "(no validation split)" in capsys.readouterr().out


@pytest.mark.slow
def test_reproduce_tighter_bounds_quick(tmp_path, data_dir):
    out = tmp_path / "tb"
    assert main(["reproduce", "tighter-bounds", "--quick", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    payload = json.loads((out / "results.json").read_text())
    for m in payload["models"].values():
        assert f"| {m['label']} | {m['iwae']:.2f} ± {m['iwae_se']:.2f} |" in report
    assert "| CIWAE(β=0.05), K=64 |" in report and "| — | -84.57 ± 0.09 | — |" in report  # both CIWAE rows
    floor = payload["snr"][0]["snr_floor"]
    assert payload["snr"][0]["draws"] == 4 and f"**{floor:.3f}**" in report
    assert (out / "snr.png").stat().st_size > 10_000 and (out / "results.csv").is_file()


@pytest.mark.slow
def test_reproduce_discrete_mnist_quick(tmp_path, data_dir, capsys):
    out = tmp_path / "dm"
    assert main(["reproduce", "discrete-mnist", "--quick", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    payload = json.loads((out / "results.json").read_text())
    assert len(payload["models"]) == 18
    for m in payload["models"].values():  # every estimator on both SBNs, its measured numbers in the table
        assert f"| {m['nll']:.2f} | {m['log_px_se']:.2f} | {m['elbo']:.2f} |" in report
        assert [g["step"] for g in m["grad_variance"]] == [5, 10]
    for model in ("linear", "nonlinear"):
        ratios = payload["variance_ratios"][model]
        assert ratios["step"] == 10 and ratios["reinforce"] == 1.0 and len(ratios) == 10
        assert f"{ratios['vimco5']:.3g}" in report
    assert (out / "grad_variance.png").stat().st_size > 10_000 and (out / "elbo_vs_time.png").stat().st_size > 10_000
    assert main(["reproduce", "discrete-mnist", "--budget", "paper", "--out", str(out)]) == 2
    assert "--budget paper is not defined for discrete-mnist; choose from small, medium" in capsys.readouterr().err


def test_discrete_mnist_models_are_the_presets():
    from pathlib import Path

    from vaelab import config as C
    from vaelab.experiments import discrete_mnist as dm
    from vaelab.models import build_model

    def arch(model_cfg) -> str:
        return repr(build_model(model_cfg, (1, 28, 28)))

    root = Path(__file__).parents[1] / "configs"
    base = dm.sbn_config(None, dm.BUDGETS["small"])
    for name, preset in [("linear", "sbn-linear"), ("nonlinear", "sbn-nonlinear"), ("categorical", "categorical-20x10")]:
        cfg = C.load(root / f"{preset}.toml")
        assert arch(base.override(dm.MODELS[name][1]).model) == arch(cfg.model)
        assert cfg.data.kind == base.data.kind == "static-mnist"


def test_mode_weights_of_a_known_prior():
    # MoG prior with weights 0.3 / 0.7 at the two data means and an identity decoder: the implied
    # weight of the (-3, -3) mode is 0.3
    import torch

    from vaelab.experiments.two_gaussians import Settings, base_config, mode_weights
    from vaelab.models import build_model

    cfg = base_config(Settings()).override(
        {
            "model.prior": {"kind": "mog", "components": 2, "fixed_weights": [0.3, 0.7]},
            "model.decoder": {"kind": "mlp", "hidden": []},
        }
    )
    model = build_model(cfg.model, (2,))
    with torch.no_grad():
        model.prior.means.copy_(torch.tensor([[-3.0, -3.0], [3.0, 3.0]]))
        model.prior.logvars.fill_(-2.0)
        model.decoder[0].weight.copy_(torch.eye(2))
        model.decoder[0].bias.zero_()
    w = mode_weights(model, cfg.data, n=100_000)
    assert abs(w[0] - 0.3) < 4 * (0.21 / 100_000) ** 0.5 and abs(sum(w) - 1) < 1e-9


def test_binary_latent_model_from_the_command_line(tmp_path):
    # seed 002: binary x, Bernoulli latents with p(z) = Ber(0.5), the likelihood-ratio gradient
    run = tmp_path / "sbn"
    assert (
        main(
            [
                "train",
                "--dataset",
                "digits",
                "--latent",
                "bernoulli",
                "--set",
                "model.latent.dim=8",
                "--prior",
                "bernoulli",
                "--likelihood",
                "bernoulli",
                "--estimator",
                "reinforce",
                "--epochs",
                "2",
                "--out",
                str(run),
                "--quiet",
            ]
        )
        == 0
    )
    assert main(["evaluate", str(run), "--k", "16"]) == 0
    ev = json.loads((run / "evaluation_test.json").read_text())
    assert ev["elbo"] <= ev["log_px"] + 1e-6 and ev["active_units"] <= 8
    assert main(["sample", str(run), "-n", "4"]) == 0
    assert np.load(run / "samples.npy").shape == (4, 1, 8, 8)


def test_study_test_subset_is_a_fixed_random_draw_not_the_first_rows():
    import torch

    from vaelab.experiments._study import test_subset

    x = torch.arange(10000.0).view(-1, 1)
    a, b = test_subset(x, 2000), test_subset(x, 2000)
    assert torch.equal(a, b) and a.unique().numel() == 2000  # the same points for every model, no repeats
    assert a.max() > 5000 and a.min() < 5000  # from both halves of MNIST's ordered test set
    assert torch.equal(test_subset(x, 20000), x)


@pytest.mark.slow
def test_reproduce_cavi_gmm_quick(tmp_path):
    assert main(["reproduce", "cavi-gmm", "--quick", "--out", str(tmp_path / "cg")]) == 0
    rows = json.loads((tmp_path / "cg" / "results.json").read_text())["scaling"]
    report = (tmp_path / "cg" / "report.md").read_text()
    assert {(r["n"], r["kind"]) for r in rows} == {(n, k) for n in (1000, 10_000) for k in ("bayes", "em")}
    for r in rows:
        assert f"{r['per_iter_ratio']:.2f}" in report
        if r["kind"] == "em":  # same data, same start, same algorithm: the same likelihood
            assert r["ours_score"] == pytest.approx(r["sk_score"], abs=5e-3)
    for fig in ("fits.png", "scaling.png"):
        assert (tmp_path / "cg" / fig).stat().st_size > 10_000


@pytest.mark.slow
def test_reproduce_amortization_gap_quick(tmp_path, data_dir):
    out = tmp_path / "ag"
    assert main(["reproduce", "amortization-gap", "--quick", "--out", str(out), "--data-dir", str(data_dir)]) == 0
    res = json.loads((out / "results.json").read_text())["results"]
    report = (out / "report.md").read_text()
    for name in ("vae", "savae", "svi"):
        r = res[name]
        assert r["log_px"] >= r["optimized_elbo"] - 0.5  # IS with q* as proposal is at least its ELBO, up to noise
        assert f"{r['optimized_elbo']:.2f}" in report and f"{r['surgery']['mutual_info']:.2f}" in report
    for name in ("vae", "savae"):
        assert res[name]["amortization_gap"] > -0.2  # q* starts from the encoder's lambda


def test_pixel_data_defaults_to_a_bernoulli_decoder_unless_a_likelihood_is_named(tmp_path, capsys):
    from vaelab import config as config_mod

    def trained(*extra, data=("--dataset", "digits")):
        out = tmp_path / f"r{len(list(tmp_path.iterdir()))}"
        assert main(["train", *data, "--epochs", "0", "--quiet", "--out", str(out), *extra]) == 0
        return config_mod.load(out / "config.toml").model.likelihood.kind, capsys.readouterr().out

    kind, said = trained()
    assert kind == "bernoulli" and "likelihood: bernoulli (the default for digits" in said
    assert trained("--likelihood", "gaussian")[0] == "gaussian"
    assert trained("--set", "model.likelihood.variance=per_dim")[0] == "gaussian"  # an option of the default names it
    (tmp_path / "g.toml").write_text('[model]\nlikelihood = "gaussian"\n')
    kind, said = trained("--config", str(tmp_path / "g.toml"))
    assert kind == "gaussian" and "likelihood:" not in said
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(30, 2)).astype(np.float32))
    assert trained(data=("--path", str(tmp_path / "x.npy")))[0] == "gaussian"  # a user's real-valued array


def test_the_caltech_budgets_and_ablations_are_one_setting_at_a_time():
    from vaelab.experiments import prior_ablations as pa
    from vaelab.experiments import prior_benchmarks as pb
    from vaelab.experiments import vr_bounds as vr

    jobs = {j.name: j.overrides for j in pa.jobs()}
    assert len(jobs) == 8 and all(o["data.kind"] == "caltech-silhouettes" for o in jobs.values())
    assert jobs["noise-init_vamp"]["model.prior"] == {
        "kind": "vamp",
        "components": 500,
        "init": "noise",
        "constraint": "sigmoid",
    }
    assert jobs["logvar-clip_standard_normal"]["model.latent"]["min_logvar"] == -6.0  # both rows of the pair
    assert pa.pair_of("c50") == "baseline_standard_normal" and pa.pair_of("no-warmup") == "no-warmup_standard_normal"
    assert pb.BUDGETS["caltech-ablations"].overrides == pb.BUDGETS["caltech-paper"].overrides
    assert [j.name for j in vr.jobs_for("caltech-paper")] == [
        f"caltech-silhouettes_{t}_k5" for t in ("vae", "iwae", "vr-max")
    ]
    assert all(j.overrides["train.n_samples"] == 50 for j in vr.jobs_for("caltech-paper-k50"))
    lr = vr.BUDGETS["caltech-paper-lr1e-4"]
    assert lr.overrides == {"train.lr": 1e-4} and (lr.batch_size, lr.lr_schedule, lr.epochs) == (20, "iwae-2", 255)


@pytest.mark.slow
def test_reproduce_ladder_mnist_quick(tmp_path, data_dir):
    out = tmp_path / "lm"
    assert main(["reproduce", "ladder-mnist", "--quick", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    models = json.loads((out / "results.json").read_text())["models"]
    report = (out / "report.md").read_text()
    assert set(models) == {"vae_2layer", "topdown_2layer", "vae_5layer", "topdown_5layer"}
    assert models["topdown_5layer"]["active_units_per_layer"].count("+") == 4  # five layers counted
    for m in models.values():
        assert f"| {m['label']} | {m['nll']:.2f} |" in report and "ais_log_px" in m
    assert "5 layers, top-down − 5 layers, bottom-up" in report
    config = (out / "runs" / "topdown_5layer" / "config.toml").read_text()
    assert 'kind = "top-down"' in config and "upper_z_dims = [32, 16, 8, 4]" in config


def test_every_config_key_is_explained_by_train_help_and_there_is_a_version(capsys):
    """Issue 43: `vaelab train --help` never mentioned model.labels, data.labelled, data.standardize, ..."""
    from dataclasses import fields

    from vaelab.config import DataConfig, ModelConfig, TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    keys = [f"data.{f.name}" for f in fields(DataConfig) if f.name != "options"]
    keys += [f"model.{f.name}" for f in fields(ModelConfig)] + [f"train.{f.name}" for f in fields(TrainConfig)]
    flag = {"train": lambda n: "--" + n.replace("_", "-")}
    missing = [k for k in keys if k not in text and flag.get(k.split(".")[0], lambda n: "\0")(k.split(".")[1]) not in text]
    assert not missing, missing
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("vaelab 0.")


def test_train_says_when_early_stopping_ended_the_run(tmp_path, capsys):
    sets = ["data.n_train=30", "model.encoder.hidden=[64]", "train.lr=0.03", "train.batch_size=10", "train.epochs=300",
            "train.early_stopping=4", "data.n_test=100", "train.num_threads=1", "train.log_every=2"]  # fmt: skip
    argv = ["train", "--out", str(tmp_path / "r"), "--quiet", *[a for s in sets for a in ("--set", s)]]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "stopped early at epoch " in out and " of 300 (no better validation ELBO for 4 validations; best.pt holds" in out
    assert "trained 300 epochs" not in out


def test_the_cli_shows_vaelabs_warnings_as_one_line(tmp_path):
    """Issue 43, finding 7: warnings reached the terminal with a source path and a code line."""
    import warnings

    from vaelab.cli import one_line_warnings

    with one_line_warnings():
        assert (
            warnings.formatwarning("use precision = 'fp32'", UserWarning, "x.py", 3) == "warning: use precision = 'fp32'\n"
        )
        assert "x.py:3" in warnings.formatwarning("old", DeprecationWarning, "x.py", 3)  # others as Python shows them
    argv = [sys.executable, "-m", "vaelab", "train", "--set", "data.n_train=200", "--set", "data.valid_fraction=0.0",
            "--epochs", "1", "--quiet", "--out", str(tmp_path / "r")]  # fmt: skip
    err = subprocess.run(argv, capture_output=True, text=True, check=True).stderr
    assert err == "warning: the validation set is empty: no validation ELBO, no best.pt (last.pt is still written)\n"


def test_image_grids_keep_a_one_pixel_gap_between_tiles():
    import torch

    from vaelab.plotting import image_grid

    grid = image_grid(torch.zeros(6, 1, 4, 4), (4, 4), ncol=3)  # black tiles on a white ground
    assert grid.shape == (2 * 4 + 1, 3 * 4 + 2)
    assert (grid[4] == 1).all() and (grid[:, 4] == 1).all() and (grid[:, 9] == 1).all()  # the gaps
    assert (grid[:4, :4] == 0).all() and (grid[5:, 10:] == 0).all()  # the first and the last tile
