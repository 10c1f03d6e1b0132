"""The `vaelab reproduce` studies: each one file that trains, evaluates, draws and reports."""

EXPERIMENTS = {
    "two-gaussians": "vaelab.experiments.two_gaussians",
    "aevb-mnist": "vaelab.experiments.aevb_mnist",
    "iwae-mnist": "vaelab.experiments.iwae_mnist",
    "tighter-bounds": "vaelab.experiments.tighter_bounds",
}
