import json
import subprocess
import sys

import pytest
import torch

from vaelab.cli import main
from vaelab.compare import compare_runs
from vaelab.errors import CheckpointError
from vaelab.evaluation import evaluate_model, gradient_snr


def test_suite_gaps_vanish_at_the_exact_posterior(linear_gaussian):
    x = linear_gaussian.sample(300)
    r = evaluate_model(linear_gaussian.vae(), x, k=256, iwae_k=64)
    exact = float(linear_gaussian.log_px(x).mean())
    assert abs(r["log_px"] - exact) < 1e-3 and abs(r["elbo"] - exact) < 1e-3 and abs(r["iwae"] - exact) < 1e-3
    assert abs(r["gap"]) < 1e-4 and abs(r["neg_kl_QP"]) < 1e-4


def test_suite_orders_the_bounds_for_an_inexact_encoder(linear_gaussian):
    x = linear_gaussian.sample(300)
    r = evaluate_model(
        linear_gaussian.vae(encoder_shift=0.7, encoder_logvar_shift=-0.7), x, k=2048, iwae_k=64, per_point=True
    )
    exact = linear_gaussian.log_px(x)
    d = torch.tensor(r["per_point_log_px"], dtype=torch.float64) - exact  # paired over the same points
    assert r["elbo"] < r["iwae"] < r["log_px"]
    assert d.mean() <= 4 * d.std() / len(d) ** 0.5  # IS is a stochastic lower bound: E log p_hat <= log p
    assert r["gap"] > 5 * r["gap_se"] and r["neg_kl_QP"] < -5 * r["neg_kl_QP_se"]
    assert r["active_units_per_layer"] == "2"


def test_snr_of_inference_gradient_falls_with_k_for_iwae_and_not_with_dreg(linear_gaussian):
    # Rainforth et al. 2018 (Sec. 3) and Tucker et al. 2019: the behaviour the figure shows
    model = linear_gaussian.vae(encoder_shift=0.5, encoder_logvar_shift=-0.5)
    x = linear_gaussian.sample(8)
    plain = gradient_snr(model, x, ks=(1, 64), draws=200)
    dreg = gradient_snr(model, x, ks=(1, 64), estimator="dreg", draws=200)
    assert plain[1]["snr_inference"] < plain[0]["snr_inference"]
    assert plain[1]["snr_generative"] > plain[0]["snr_generative"]
    assert dreg[1]["snr_inference"] > plain[1]["snr_inference"]
    # near the posterior (q slightly over-dispersed) DReG's encoder SNR grows with K while the plain
    # estimator's collapses (Tucker et al. 2019, Fig. 1; Rainforth et al. 2018, Thm. 1)
    near = linear_gaussian.vae(encoder_shift=0.2, encoder_logvar_shift=0.3)
    x1 = linear_gaussian.sample(1)
    plain, dreg = (gradient_snr(near, x1, ks=(1, 64), estimator=e, draws=200) for e in ("reparam", "dreg"))
    assert dreg[1]["snr_inference"] > 2 * dreg[0]["snr_inference"]
    assert plain[1]["snr_inference"] < plain[0]["snr_inference"] / 2
    assert plain[0]["snr_floor"] == pytest.approx((2 / (3.141592653589793 * 200)) ** 0.5)


def test_snr_refuses_dreg_with_a_vamp_prior():
    from vaelab.config import RunConfig
    from vaelab.errors import ConfigError
    from vaelab.models import build_model

    cfg = RunConfig().override({"model.prior": {"kind": "vamp", "components": 3}, "model.encoder.hidden": [4]})
    model = build_model(cfg.model, (2,), pseudo_init=torch.randn(3, 2))
    with pytest.raises(ConfigError, match="'dreg' assumes log p"):
        gradient_snr(model, torch.randn(4, 2), ks=(1,), estimator="dreg", draws=2)


def test_evaluate_and_compare_from_the_command_line(tmp_path, capsys):
    runs = []
    for name, extra in [("vae", []), ("miwae", ["--objective", "miwae", "--n-samples", "2", "--n-groups", "3"])]:
        out = tmp_path / name
        assert (
            main(
                [
                    "train",
                    "--out",
                    str(out),
                    "--set",
                    "data.n_train=300",
                    "--set",
                    "data.n_test=100",
                    "--epochs",
                    "1",
                    "--quiet",
                    *extra,
                ]
            )
            == 0
        )
        assert main(["evaluate", str(out), "--k", "64", "--k-iwae", "8"]) == 0
        runs.append(str(out))
    ev = json.loads((tmp_path / "miwae" / "evaluation_test.json").read_text())
    assert ev["iwae_k"] == 8 and ev["n"] == 100 and (tmp_path / "miwae" / "evaluation_test.csv").is_file()
    assert main(["compare", *runs, "--out", str(tmp_path / "t.md")]) == 0
    table = (tmp_path / "t.md").read_text()
    assert "MIWAE(3,2)" in table and "VAE k=1" in table and table.count("\n") == 4
    table2, rows = compare_runs(runs)
    assert rows[1]["log_px"] == pytest.approx(ev["log_px"])


@pytest.mark.slow
def test_compare_without_evaluation_says_what_to_run(tmp_path):
    out = tmp_path / "r"
    assert main(["train", "--out", str(out), "--set", "data.n_train=200", "--epochs", "1", "--quiet"]) == 0
    with pytest.raises(CheckpointError, match="run `vaelab evaluate"):
        compare_runs([out])
    p = subprocess.run([sys.executable, "-m", "vaelab", "compare", str(out)], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "vaelab evaluate" in p.stderr
