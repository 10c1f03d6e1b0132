"""Text VAEs (Bowman et al. 2016): the LSTM language-model baseline, sentence-level evaluation
(IS perplexity) and generation (greedy, sampled, beam; posterior-mean reconstructions; homotopies).

The model itself is the one :class:`~vaelab.models.VAE` with network ``lstm`` and likelihood
``categorical`` on a text data set (``ptb`` or ``text``); training tricks (KL annealing, word
dropout, free bits) are ``[train]`` and ``[model.decoder]`` options (docs/text.md).
"""

from .generate import decode_codes, homotopy, posterior_mean_codes, reconstruct, sample_prior
from .lm import LanguageModel, fit_language_model
from .metrics import TextEvaluation, evaluate_language_model, evaluate_text_vae, perplexity

__all__ = [
    "LanguageModel",
    "TextEvaluation",
    "decode_codes",
    "evaluate_language_model",
    "evaluate_text_vae",
    "fit_language_model",
    "homotopy",
    "perplexity",
    "posterior_mean_codes",
    "reconstruct",
    "sample_prior",
]
