"""The `vaelab reproduce` studies: each one file that trains, evaluates, draws and reports.

``vaelab reproduce NAME`` imports ``vaelab.experiments.<NAME with - as _>`` and calls its ``run``.
"""

#: study name -> module; the CLI's choices
EXPERIMENTS = {
    "two-gaussians": "vaelab.experiments.two_gaussians",
    "aevb-mnist": "vaelab.experiments.aevb_mnist",
    "iwae-mnist": "vaelab.experiments.iwae_mnist",
    "iwae-omniglot": "vaelab.experiments.iwae_omniglot",
    "tighter-bounds": "vaelab.experiments.tighter_bounds",
    "discrete-mnist": "vaelab.experiments.discrete_mnist",
    "cavi-gmm": "vaelab.experiments.cavi_gmm",
    "amortization-gap": "vaelab.experiments.amortization_gap",
    "ptb-vae": "vaelab.experiments.ptb_vae",
    "prior-benchmarks": "vaelab.experiments.prior_benchmarks",
    "vr-bounds": "vaelab.experiments.vr_bounds",
    "flows-mnist": "vaelab.experiments.flows_mnist",
    "semi-supervised-mnist": "vaelab.experiments.semi_supervised_mnist",
}
