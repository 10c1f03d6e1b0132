"""Adding a piece is one decorator: the config validator, the CLI and training pick it up."""

import pytest
import torch
from torch.distributions import Independent, Laplace

from vaelab import PRIORS, RunConfig, fit
from vaelab.cli import build_parser, registry_help
from vaelab.distributions import Prior
from vaelab.errors import ConfigError
from vaelab.objectives import OBJECTIVES, Objective


@pytest.fixture
def throwaway():
    @PRIORS.register("laplace_test")
    class LaplacePrior(Prior):
        """Args:
        scale: b of Laplace(0, b).
        """

        def __init__(self, latent, scale: float = 1.0):
            super().__init__(latent)
            self.register_buffer("scale", torch.full(self.event_shape, scale))

        def distribution(self):
            return Independent(Laplace(torch.zeros_like(self.scale), self.scale), 1)

    @OBJECTIVES.register("halves_test")
    class Halves(Objective):
        groups = 2

        def terms(self, s):
            return [(1.0, 2)]

    yield
    del PRIORS._items["laplace_test"], OBJECTIVES._items["halves_test"]


def test_a_registered_prior_and_bound_train_from_config_and_cli(throwaway, tmp_path):
    cfg = RunConfig().override(
        {
            "model.prior": {"kind": "laplace_test", "scale": 2.0},
            "train.objective": "halves_test",
            "train.n_samples": 2,
            "data.n_train": 300,
            "train.epochs": 2,
            "train.num_threads": 1,
        }
    )
    res = fit(cfg, tmp_path / "r", quiet=True, tensorboard=False)
    assert float(res.model.prior.scale[0]) == 2.0 and res.history[-1]["train_bound"] > -100
    assert "laplace_test(scale=1.0)" in registry_help() and "halves_test()" in registry_help()
    args = build_parser().parse_args(["train", "--prior", "laplace_test", "--objective", "halves_test"])
    assert args.slot_prior == "laplace_test"
    with pytest.raises(ConfigError, match="unknown option 'model.prior.shape' for prior 'laplace_test'; its options: scale"):
        RunConfig().override({"model.prior": "laplace_test", "model.prior.shape": 1.0})


def test_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="registered twice"):
        PRIORS.register("mog")(object)


def test_every_registered_class_is_importable_from_its_package():
    """Issue 43: `from vaelab.distributions import PlanarLatent` failed while GaussianLatent worked."""
    import importlib
    import inspect

    from vaelab.distributions import LATENTS, LIKELIHOODS, PRIORS
    from vaelab.estimators import ESTIMATORS
    from vaelab.labels import LABEL_MODES
    from vaelab.models import MODEL_KINDS
    from vaelab.nets import NETWORKS
    from vaelab.objectives import OBJECTIVES

    registries = {"vaelab.distributions": (LATENTS, PRIORS, LIKELIHOODS), "vaelab.nets": (NETWORKS,),
                  "vaelab.objectives": (OBJECTIVES,), "vaelab.estimators": (ESTIMATORS,),
                  "vaelab.labels": (LABEL_MODES,), "vaelab.models": (MODEL_KINDS,)}  # fmt: skip
    missing = []
    for package, regs in registries.items():
        namespace = importlib.import_module(package)
        for reg in regs:
            for name in reg.names():
                obj = reg[name]
                if inspect.isclass(obj) and getattr(namespace, obj.__name__, None) is not obj:
                    missing.append(f"{package}.{obj.__name__}")
                if inspect.isclass(obj):
                    assert obj.__name__ in namespace.__all__, f"{package}.__all__ lacks {obj.__name__}"
    assert not missing, missing
