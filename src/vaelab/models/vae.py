"""The VAE: one class for every latent family, network, prior, likelihood and number of layers.

The model only produces log-density terms (:class:`LogWeightTerms`); turning them into a loss is
the job of ``vaelab.objectives`` and ``vaelab.estimators`` (Pyro-style separation of model and
objective).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from ..data.batch import Batch
from ..distributions import PRIORS, LatentFamily, Likelihood, Prior
from ..distributions.class_prior import ClassConditionalPrior
from ..errors import ConfigError, DataError
from ..labels import LABEL_MODES, LabelMode, every_class, tile_rows  # noqa: F401 (every_class, tile_rows: re-exported)
from .kinds import MODEL_KINDS
from .terms import LogWeightTerms

if TYPE_CHECKING:
    from .layers import StochasticLayer

#: the prior a VAE gets when none is given, by latent support
DEFAULT_PRIOR = {
    "real": "standard_normal",
    "binary": "bernoulli",
    "unit_interval": "bernoulli",
    "one_hot": "categorical",
    "simplex": "categorical",
}


@MODEL_KINDS.register("vae")
class VAE(nn.Module):
    """Variational autoencoder with any encoder/decoder network, latent family, prior and likelihood.

    Args:
        encoder: any ``nn.Module`` mapping x (B, *x_shape) -> (B, latent.n_params), the
            parameters of q(z_1|x) (for a Gaussian latent: mean and log-variance, concatenated).
        decoder: any ``nn.Module`` mapping z_1 (N, latent.flat_dim) -> likelihood parameters,
            N x prod(likelihood.param_shape) numbers (flat or already shaped).
        latent: the :class:`~vaelab.distributions.LatentFamily` of q(z_1|x).
        likelihood: a :class:`~vaelab.distributions.Likelihood` p(x|z_1); it fixes the data's
            event shape.
        prior: a :class:`~vaelab.distributions.Prior` on the top layer; default N(0, I),
            Ber(0.5) or uniform categorical, by the top latent's support. A VampPrior is bound to
            this model's encoder (through the lower layers' means when L > 1).
        upper_encoders: L-1 :class:`~vaelab.models.layers.StochasticLayer` q(z_l | z_{l-1}).
        upper_decoders: L-1 layers p(z_{l-1} | z_l), l = 2..L, in the same order.
        n_classes: C > 0 makes the model read class labels y in 0..C-1: ``encoder(x, y)`` and
            ``decoder(z, y)`` are then :class:`~vaelab.nets.conditioned.Conditioned` networks.
        labels: the label mode, a :data:`vaelab.labels.LABEL_MODES` name or a
            :class:`~vaelab.labels.LabelMode`: ``conditional`` (a CVAE, Sohn et al. 2015: y is always
            observed, log p(x|y) is bounded) or ``semi-supervised`` (Kingma et al. 2014's M2: p(x, y, z)
            = p(x|y, z) p(z) p(y) with a uniform p(y), y latent where unobserved and ``classifier``
            giving q(y|x)); ``none`` with C = 0. ``model.label_mode`` is the mode object.
        classifier: M2's network x -> C logits of q(y|x) (an inference parameter).
        class_prior: an optional learned p(z|y) (:class:`~vaelab.distributions.class_prior.ClassConditionalPrior`)
            in place of ``prior``, for a one-layer conditional model.

    Raises:
        ConfigError: mismatched layers, or a prior whose event shape or support does not fit.

    Source: Kingma & Welling 2014 (AEVB), Rezende et al. 2014; the multi-layer form is Burda et
    al. 2016, Sec. 2.
    """

    encoder: nn.Module
    decoder: nn.Module
    latent: LatentFamily
    likelihood: Likelihood
    prior: Prior
    upper_encoders: nn.ModuleList  # of StochasticLayer
    upper_decoders: nn.ModuleList
    classifier: nn.Module | None
    class_prior: nn.Module | None

    @property
    def inference_layers(self) -> list[StochasticLayer]:
        """The upper inference layers q(z_l | z_{l-1}), l = 2..L, bottom to top (typed view of ``upper_encoders``)."""
        return cast("list[StochasticLayer]", list(self.upper_encoders))

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        latent: LatentFamily,
        likelihood: Likelihood,
        prior: Prior | None = None,
        upper_encoders=(),
        upper_decoders=(),
        n_classes: int = 0,
        labels: str | LabelMode = "none",
        classifier: nn.Module | None = None,
        class_prior: nn.Module | None = None,
    ):
        super().__init__()
        if len(upper_encoders) != len(upper_decoders):
            raise ConfigError("a multi-layer VAE needs one generative layer per upper inference layer")
        self.label_mode = labels if isinstance(labels, LabelMode) else LABEL_MODES.build(labels, where="model.labels")
        self.label_mode.check_model(n_classes, classifier, class_prior, len(upper_encoders))
        self.n_classes, self.classifier, self.class_prior = n_classes, classifier, class_prior
        self.encoder, self.decoder, self.latent, self.likelihood = encoder, decoder, latent, likelihood
        self.upper_encoders = nn.ModuleList(upper_encoders)
        self.upper_decoders = nn.ModuleList(upper_decoders)
        top = self.inference_layers[-1].family if upper_encoders else latent
        if prior is None:
            prior = PRIORS.build(DEFAULT_PRIOR[top.support], latent=top)
        if tuple(prior.event_shape) != tuple(top.event_shape):
            raise ConfigError(
                f"prior event shape {tuple(prior.event_shape)} != top latent event shape {tuple(top.event_shape)}"
            )
        self.prior = prior
        attach = getattr(prior, "attach_encoder", None)  # the VampPrior's q(z|u) is this model's encoder
        if attach is not None and n_classes:
            raise ConfigError("a VampPrior's pseudo-inputs carry no labels: use another prior for a labelled model")
        if attach is not None:
            attach(self.top_posterior)
        self.spec: dict | None = None  # set by build_model: what a checkpoint needs to rebuild this model

    @property
    def labels(self) -> str:
        """The label mode's registry name (``model.labels``)."""
        return self.label_mode.registry_name

    # --- shapes -------------------------------------------------------------------------------
    @property
    def x_shape(self) -> tuple[int, ...]:
        """Event shape of one data point."""
        return self.likelihood.event_shape

    @property
    def x_dim(self) -> int:
        return self.likelihood.x_dim

    @property
    def z_dims(self) -> tuple[int, ...]:
        """Latent dimensions (D_1, ..., D_L), bottom to top."""
        return (self.latent.dim, *(e.z_dim for e in self.inference_layers))

    @property
    def z_dim(self) -> int:
        """Dimension of the top layer, the one the prior is on."""
        return self.z_dims[-1]

    @property
    def n_layers(self) -> int:
        return 1 + len(self.upper_encoders)

    @property
    def has_analytic_kl(self) -> bool:
        """Whether KL(q(z|x) || p(z)) has a closed form: one layer, a prior with one, a family allowing it."""
        prior_closed = self.class_prior is not None or self.prior.has_analytic_kl
        return prior_closed and self.n_layers == 1 and self.latent.closed_form_kl

    @property
    def reparameterized(self) -> bool:
        """True when every stochastic layer is drawn with ``rsample`` (gradients flow through z)."""
        return self.latent.has_rsample and all(e.family.has_rsample for e in self.inference_layers)

    # --- parameter groups ---------------------------------------------------------------------
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """{"inference": phi, "generative": theta}: every trainable parameter in exactly one group.

        Inference: encoder, latent family, upper inference layers. Generative: decoder,
        likelihood (a learned variance too), prior (a VampPrior's pseudo-inputs too), upper
        generative layers.

        Raises:
            RuntimeError: a parameter is in no group or in both (a model built with an extra
                submodule must say where it belongs by overriding this method).
        """
        groups = {
            "inference": [
                *self.encoder.parameters(),
                *self.latent.parameters(),
                *self.upper_encoders.parameters(),
                *(self.classifier.parameters() if self.classifier is not None else []),
            ],
            "generative": [
                *self.decoder.parameters(),
                *self.likelihood.parameters(),
                *self.prior.parameters(),
                *self.upper_decoders.parameters(),
                *(self.class_prior.parameters() if self.class_prior is not None else []),
            ],
        }
        check_groups(self, groups)
        return groups

    def inference_parameters(self) -> list[nn.Parameter]:
        return self.parameter_groups()["inference"]

    def generative_parameters(self) -> list[nn.Parameter]:
        return self.parameter_groups()["generative"]

    # --- distributions ------------------------------------------------------------------------
    def posterior(self, x: Tensor, y: Tensor | None = None) -> Distribution:
        """q(z_1|x) (q(z_1|x, y) for a labelled model, y (B,)): batch shape (B,), event shape ``latent.event_shape``.

        Raises:
            DataError: a labelled model without labels y, or labels for a model that reads none.
        """
        params = self.encoder(x, self._check_y(y, x.shape[0])) if self.n_classes else self._plain(self.encoder, x, y)
        n = self.latent.n_params
        _check_width(self.encoder, "encoder", params, x.shape[0], n, lambda: f"the latent {self.latent!r}")
        if params.dim() != 2:  # (B, n) already for dense encoders: no reshape node in the graph
            params = params.reshape(x.shape[0], -1)
        return self.latent.distribution(params)

    def _plain(self, net: nn.Module, inp: Tensor, y: Tensor | None) -> Tensor:
        self._no_labels(y)
        return net(inp)

    def _check_y(self, y: Tensor | None, n: int) -> Tensor:
        if y is None:
            raise DataError(f"this {self.labels} model needs labels y (B,) here; pass y")
        if y.shape != (n,) or y.dtype != torch.long:
            raise DataError(f"labels y must be an int64 tensor of shape ({n},), got {y.dtype} {tuple(y.shape)}")
        if n and (int(y.min()) < 0 or int(y.max()) >= self.n_classes):
            raise DataError(f"labels y must lie in 0..{self.n_classes - 1}, got [{int(y.min())}, {int(y.max())}]")
        return y

    def classify(self, x: Tensor) -> Tensor:
        """log q(y|x) of a semi-supervised model (Kingma et al. 2014's classifier), (B, C) nats.

        Raises:
            ConfigError: the model has no classifier.
        """
        if self.classifier is None:
            raise ConfigError(f"this model (model.labels = {self.labels!r}) has no classifier q(y|x)")
        return torch.log_softmax(self.classifier(x).reshape(x.shape[0], self.n_classes), -1)

    @property
    def log_py(self) -> float:
        """log p(y) of M2's uniform class prior, nats."""
        return -math.log(self.n_classes)

    def prior_given(self, y: Tensor | None):
        """The prior the top layer is scored under: p(z|y) (batch (B,)) with a class prior, else p(z)."""
        return self._class_prior().given(y) if self.class_prior is not None and y is not None else self.prior

    def _class_prior(self) -> ClassConditionalPrior:
        return cast("ClassConditionalPrior", self.class_prior)

    def top_posterior(self, x: Tensor) -> Distribution:
        """q(z_L|x) through the means of the lower layers: the VampPrior's components."""
        q = self.posterior(x)
        h = self.latent.mean(q)  # (B, *event_1)
        q = self.latent.density_everywhere(q)
        for layer in self.upper_encoders:
            q = layer(h)
            h = q.mean  # (B, D_l)
        return q

    @property
    def autoregressive(self) -> bool:
        """True when the decoder reads the previous tokens of x (text): decode needs x.

        The decoder's ``autoregressive`` flag, read from its instance dict or its class: ``getattr`` on
        an nn.Module without the flag raises and catches an AttributeError, every training step."""
        dec = self.decoder
        return bool(dec.__dict__.get("autoregressive", getattr(type(dec), "autoregressive", False)))

    def decode(self, z: Tensor, x: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        """Decoder outputs for z_1 of shape (..., *latent event) -> (..., *likelihood.param_shape).

        Leading axes are flattened first: ``nn.Linear`` on a 2-D input is one fused addmm,
        while on (K, B, D) it falls back to matmul + add, ~15% slower per training step.
        An autoregressive decoder also gets x (B, T) for teacher forcing and returns logits
        (..., T', V) up to the batch's longest sentence. A labelled model's decoder reads y, whose
        shape is a suffix of z's leading axes (e.g. (B,) for z (S, B, D)): it is expanded over the rest.

        Raises:
            ConfigError: an autoregressive decoder without x.
        """
        lead = z.shape[: z.dim() - len(self.latent.event_shape)]
        if self.autoregressive:
            if x is None:
                raise ConfigError(
                    "this decoder reads the previous tokens: call decode(z, x), or generate text with vaelab.text.generate"
                )
            return self.decoder(z.reshape(*lead, self.latent.flat_dim), x)
        params = self._decode_rows(z.reshape(-1, self.latent.flat_dim), lead, y)  # (S*B, n_outputs)
        return params.reshape(*lead, *self.likelihood.param_shape)

    def _decode_rows(self, flat: Tensor, lead: tuple[int, ...], y: Tensor | None) -> Tensor:
        """The decoder on rows z (N, D), N = prod(lead): (N, n_outputs) or (N, *param_shape), its width
        checked; a labelled model's y (a suffix of ``lead``) expanded over the rest of it."""
        if self.n_classes:
            y = self._check_y(y, lead[-1] if lead else 1)
            params = self.decoder(flat, y.expand(lead).reshape(-1))  # y (B,) -> (S*B,)
        else:
            params = self._plain(self.decoder, flat, y)  # (S*B, n_outputs)
        _check_width(
            self.decoder,
            "decoder",
            params,
            flat.shape[0],
            math.prod(self.likelihood.param_shape),
            lambda: f"the likelihood {type(self.likelihood).__name__} (parameters {tuple(self.likelihood.param_shape)})",
        )
        return params

    def conditional(self, z: Tensor, y: Tensor | None = None) -> Distribution:
        """p(x|z_1) (p(x|z_1, y) for a labelled model): batch shape z's leading axes, event shape ``x_shape``."""
        return self.likelihood.distribution(self.decode(z, y=y))

    def _flat(self, z: Tensor) -> Tensor:
        return z.reshape(*z.shape[: z.dim() - len(self.latent.event_shape)], self.latent.flat_dim)

    # --- the one method objectives need -------------------------------------------------------
    def log_weight_terms(
        self,
        x: Tensor | Batch,
        n_samples: int = 1,
        generator: torch.Generator | None = None,
        posterior: Distribution | None = None,
        reparameterize: bool = True,
        y: Tensor | None = None,
    ) -> LogWeightTerms:
        """Draw S = ``n_samples`` samples h ~ q(h|x) and score them.

        Samples are drawn with ``rsample`` when the latent family allows it, else with ``sample``
        (score-function estimators then supply the encoder's gradient).

        Args:
            x: (B, *x_shape) data, or a :class:`~vaelab.data.Batch`.
            n_samples: S.
            generator: optional RNG for reproducible evaluation.
            posterior: a precomputed q(z_1|x) for this x (saves an encoder pass when chunking).
            reparameterize: False detaches the samples (score-function estimators, whose
                gradient must not also flow through a reparameterized z).
            y: (B,) labels of a labelled model: the terms of log p(x, z | y) (CVAE) or of
                log p(x, y, z) without the constant log p(y) (M2). A semi-supervised model without y
                draws y ~ q(y|x) per sample (h = (y, z): the terms then bound log p(x); see
                :class:`~vaelab.labels.semi_supervised.SampledLabelTerms`, the same interface).
        Returns:
            :class:`LogWeightTerms` with (S, B) terms.
        Raises:
            DataError: a conditional model without y, or y for a model that reads no labels.
        """
        x = x.x if isinstance(x, Batch) else x
        if y is None and self.label_mode.infers_labels:  # h = (y, z): y drawn from q(y|x)
            return self.label_mode.latent_label_terms(self, x, n_samples, generator, reparameterize)
        q = self.posterior(x, y) if posterior is None else posterior
        if n_samples == 1 and self.one_sample_point_path:
            return self._one_sample_terms(x, q, generator, reparameterize, y)
        z = self.latent.draw(q, n_samples, generator)  # (S, B, *event)
        z = z if reparameterize else z.detach()
        zs, posteriors = [z], [q]
        for layer in self.inference_layers:
            q_l = layer(zs[-1])  # batch (S, B)
            posteriors.append(q_l)
            z_l = layer.family.draw(q_l, 1, generator)[0]  # (S, B, D_l)
            zs.append(z_l if reparameterize else z_l.detach())
        log_px_z = self.likelihood.log_prob(self.decode(z, x, y), x)  # (S, B): x (B, *x_shape) broadcasts
        return LogWeightTerms(self, zs, log_px_z, posteriors, x, y)

    @property
    def one_sample_point_path(self) -> bool:
        """Whether one sample's terms are formed per data point, without the sample axis (one stochastic
        layer whose family draws points, a decoder that does not read x)."""
        return self.latent.draws_point and not len(self.upper_encoders) and not self.autoregressive

    def _one_sample_terms(self, x: Tensor, q: Distribution, generator, reparameterize: bool, y: Tensor | None):
        """:meth:`log_weight_terms` at S = 1 on per-point tensors: the same values, samples and gradients,
        with none of the views that add and remove the sample axis (each a node of the backward pass: ~2 %
        of a VAE step on the IWAE-paper MLP, docs/performance.md)."""
        z = self.latent.draw_point(q, generator)  # (B, *event)
        z = z if reparameterize else z.detach()
        flat = z if z.dim() == 2 else z.reshape(z.shape[0], -1)  # (B, D)
        log_px_z = self.likelihood.log_prob_rows(self._decode_rows(flat, z.shape[:1], y), x)  # (B,)
        return LogWeightTerms(self, [z], log_px_z, [q], x, y, sample_axis=False)

    # --- densities at any latent point (AIS, BDMC) -------------------------------------------
    def log_prior_latents(self, zs: list[Tensor], y: Tensor | None = None) -> Tensor:
        """log p(h) = log p(z_L) + sum_l log p(z_l | z_{l+1}) for h = ``zs`` (bottom to top, each
        (*lead, *event_l)), shape ``lead``, nats (Burda et al. 2016, Sec. 2)."""
        log_p = self.prior_given(y).log_prob(zs[-1])
        for layer, z_lower, z_upper in zip(self.upper_decoders, zs[:-1], zs[1:]):
            log_p = log_p + layer(z_upper).log_prob(z_lower)  # p(z_l | z_{l+1})
        return log_p

    def log_joint(self, x: Tensor, zs: list[Tensor], y: Tensor | None = None) -> Tensor:
        """log p(x, h) for x (B, *x_shape) and h = ``zs`` with leading axes (..., B), nats."""
        return self.log_prior_latents(zs, y) + self.likelihood.log_prob(self.decode(zs[0], x, y), x)

    def log_posterior(self, x: Tensor, zs: list[Tensor], y: Tensor | None = None, q: Distribution | None = None) -> Tensor:
        """log q(h|x) = log q(z_1|x) + sum_l log q(z_l | z_{l-1}) at any h (families that score any point),
        leading axes (..., B), nats. ``q``: q(z_1|x) if already computed."""
        log_q = (self.posterior(x, y) if q is None else q).log_prob(zs[0])
        for layer, z_lower, z_upper in zip(self.inference_layers, zs[:-1], zs[1:]):
            log_q = log_q + layer(z_lower).log_prob(z_upper)
        return log_q

    def sample_latents(self, n: int, y: Tensor | None = None) -> list[Tensor]:
        """h ~ p(h): ``zs`` bottom to top, each (n, *event_l); with labels y (B,) and a class prior, (n, B, ...)."""
        if self.class_prior is not None and y is not None:
            top = self.prior_given(y).dist.sample((n,))  # (n, B, D_L)
        else:
            top = self.prior.sample(n)  # (n, D_L)
        zs = [top]
        for layer in reversed(self.upper_decoders):
            zs.insert(0, layer(zs[0]).sample())
        return zs

    # --- generation and diagnostics -----------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, mean: bool = True, y: Tensor | None = None) -> Tensor:
        """Generate n points: h ~ p(h), then E[x|z_1] (``mean=True``) or x ~ p(x|z_1). Shape (n, *x_shape).

        A labelled model generates class y_i for point i (y (n,) int64); without y the classes are
        drawn uniformly (M2's p(y); for a CVAE, whose p(y) is not modelled, a uniform choice).
        """
        if self.n_classes:
            dev = next(self.parameters()).device
            y = self._check_y(y if y is not None else torch.randint(self.n_classes, (n,), device=dev), n)
        else:
            self._no_labels(y)
        z = self._class_prior().sample(cast(Tensor, y)) if self.class_prior is not None else self.prior.sample(n)
        for layer in reversed(self.upper_decoders):
            z = layer(z).sample()  # (n, D_{l-1})
        params = self.decode(z, y=y)
        return self.likelihood.mean(params) if mean else self.likelihood.distribution(params).sample()

    def _no_labels(self, y: Tensor | None) -> None:
        if y is not None:
            raise DataError('labels y were given to a model that reads none (model.labels = "none")')

    @torch.no_grad()
    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """E[x | z = E_q[z_1|x, y], y], shape (B, *x_shape); M2 without y uses y = argmax q(y|x)."""
        if y is None and self.label_mode.infers_labels:
            y = self.classify(x).argmax(-1)
        return self.likelihood.mean(self.decode(self.latent.mean(self.posterior(x, y)), y=y))

    @torch.no_grad()
    def posterior_means(
        self, x: Tensor, n_samples: int = 1, generator: torch.Generator | None = None, y: Tensor | None = None
    ) -> list[Tensor]:
        """E_q[z_l | x] for every layer, each flattened to (B, numbers per sample of layer l).

        Layer 1 is exact (the mean of q(z_1|x)); for l > 1, E_q[z_l|x] = E_{q(z_{l-1}|x)}[mu_l(z_{l-1})]
        is averaged over ``n_samples`` draws of the lower layers. A labelled model reads y (B,); M2
        without y gives E_q[z_1|x] = sum_y q(y|x) E[z_1|x, y], exact by enumeration.
        """
        if y is None and self.label_mode.infers_labels:
            return self.label_mode.latent_label_means(self, x, n_samples, generator)  # (flat: posterior_means per y)
        means = [self._flat(self.latent.mean(self.posterior(x, y)))]  # (B, D_1)
        if self.n_layers > 1:
            terms = cast(LogWeightTerms, self.log_weight_terms(x, n_samples, generator, y=y))
            for q in terms.posteriors[1:]:
                means.append(q.mean.mean(0))  # (S, B, D_l) -> (B, D_l)
        return means

    def check_input(self, x: Tensor, name: str = "data") -> None:
        """Raise :class:`DataError` if x is not (N, *x_shape), finite, and in the likelihood's support."""
        if tuple(x.shape[1:]) != self.x_shape:
            raise DataError(f"{name}: expected shape (N, {', '.join(map(str, self.x_shape))}), got {tuple(x.shape)}")
        bad = (~torch.isfinite(x)).sum().item()
        if bad:
            raise DataError(f"{name}: {bad} NaN/inf values; remove or impute them before training")
        self.likelihood.check_data(x, name)


def _check_width(net: nn.Module, role: str, out: Tensor, rows: int, width: int, needs: Callable[[], str]) -> None:
    """A network's output must hold ``width`` numbers per row; otherwise say which module and what it
    ``needs()`` (a callable: the module's repr costs more than the check, every step)."""
    if out.shape[0] != rows or out.numel() != rows * width:
        got = out.numel() // max(out.shape[0], 1)
        raise ConfigError(
            f"the {role} ({type(net).__name__}) outputs {got} numbers per data point {tuple(out.shape[1:])}, "
            f"but {needs()} needs {width}; change the {role}'s last layer to {width} outputs"
        )


def check_groups(model: nn.Module, groups: dict[str, list]) -> None:
    """Assert that every trainable parameter of ``model`` is in exactly one of ``groups``."""
    seen: dict[int, str] = {}
    for name, params in groups.items():
        for p in params:
            if id(p) in seen:
                raise RuntimeError(f"a parameter is in both the {seen[id(p)]!r} and the {name!r} group")
            seen[id(p)] = name
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
    if missing:
        raise RuntimeError(f"parameters in no group: {missing[:5]}; every trainable parameter needs exactly one")
