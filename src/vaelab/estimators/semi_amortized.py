"""Semi-amortized VAE (Kim et al. 2018): the encoder proposes lambda_0, K gradient steps refine it."""

from __future__ import annotations

import torch
from torch.distributions import kl_divergence

from ..errors import ConfigError
from ..inference.local import check_refinable, encoder_params, refine
from ..objectives import combine
from .base import ESTIMATORS, BoundEstimate, Estimator, straight_through


@ESTIMATORS.register("savae")
class SemiAmortized(Estimator):
    """lambda_0 = enc_phi(x); lambda_k = lambda_{k-1} + lr * grad_lambda ELBO(x, theta, lambda_{k-1}),
    k = 1..K (Kim et al. 2018, Alg. 1); the bound is the objective on samples of q_{lambda_K}.

    The generative network gets the gradient of the bound at lambda_K held fixed (Alg. 1's
    theta update). The encoder is trained either

    - ``mode = "end_to_end"``: through the K unrolled refinement steps (d bound / d lambda_0 with
      the Hessian-vector products autograd forms; Kim et al. Sec. 3.2), or
    - ``mode = "refined_target"``: towards the refined posterior, minimizing
      KL(q_{lambda_K} || q_{lambda_0}) with lambda_K fixed (no unrolling: cheaper, and the
      encoder learns to predict where refinement would end).

    The logged bound is the refined one; the encoder's own (amortized) bound is reported as
    ``amortized_bound`` beside it.

    Args:
        steps: K refinement steps.
        lr: their step size.
        refine_samples: Monte Carlo samples per refinement gradient.
        mode: "end_to_end" | "refined_target".
    Raises:
        ConfigError: an unknown mode, or a model whose q cannot be refined (non-reparameterized
            latent, several stochastic layers).
    """

    def __init__(self, steps: int = 5, lr: float = 0.01, refine_samples: int = 1, mode: str = "end_to_end"):
        if mode not in ("end_to_end", "refined_target"):
            raise ConfigError(f'train.estimator.mode = {mode!r}: choose "end_to_end" or "refined_target"')
        if steps < 1 or lr <= 0 or refine_samples < 1:
            raise ConfigError("train.estimator: savae needs steps >= 1, lr > 0 and refine_samples >= 1")
        self.steps, self.lr, self.refine_samples, self.mode = steps, lr, refine_samples, mode

    def check(self, model) -> None:
        super().check(model)
        check_refinable(model)
        if getattr(model, "n_classes", 0):  # a model that reads labels
            raise ConfigError("estimator 'savae' refines q(z|x) without a label; use 'reparam' for a labelled model")

    def __call__(self, terms, objective) -> BoundEstimate:
        model, x = terms._model, terms.x
        s = terms.log_w.shape[0]
        lam0 = encoder_params(model, x)  # (B, P)
        end_to_end = self.mode == "end_to_end"
        lam_k = refine(model, x, lam0, self.steps, self.lr, self.refine_samples, optimizer="sgd", differentiable=end_to_end)
        q_k = model.latent.distribution(lam_k.detach())
        gen = torch.Generator(device=x.device).manual_seed(int(torch.randint(2**62, ())))
        noise = gen.get_state()  # both passes draw the same epsilon: the surrogates differ only in their gradients
        bound = combine(model.log_weight_terms(x, s, gen, posterior=q_k).log_w, objective.terms(s))  # (B,)
        if end_to_end:
            gen.set_state(noise)
            through = model.log_weight_terms(x, s, gen, posterior=model.latent.distribution(lam_k)).log_w
            # the encoder ascends its own bound (PIWAE: MIWAE, not the decoder's IWAE)
            inference = straight_through(bound.detach(), combine(through, objective.inference_terms(s)))
        else:
            inference = straight_through(bound.detach(), -kl_divergence(q_k, model.latent.distribution(lam0)))
        amortized = combine(terms.log_w, objective.terms(s)).detach()
        return BoundEstimate(bound.detach(), inference, bound, reported={"amortized_bound": amortized})

    def __repr__(self) -> str:
        return f"SemiAmortized(steps={self.steps}, lr={self.lr}, mode={self.mode!r})"
