"""The network registry. A network is any ``nn.Module`` mapping (N, *in_shape) -> (N, *out_shape)
(or the same numbers flat); the model builder passes ``in_shape`` and ``out_shape`` as context:
for an encoder, the data's event shape -> (number of latent parameters,); for a decoder,
(latent numbers,) -> the likelihood's parameter shape. Text networks also get ``vocab_size``."""

from ..registry import Registry

NETWORKS = Registry("network", context=("in_shape", "out_shape", "vocab_size"))
