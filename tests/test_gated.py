"""The VampPrior authors' gated dense networks (nets/gated.py)."""

import pytest
import torch

from vaelab.config import RunConfig
from vaelab.errors import ConfigError
from vaelab.models import build_model
from vaelab.models.init import output_bias
from vaelab.nets import NETWORKS
from vaelab.nets.gated import GatedDense, GatedMLP


def test_gated_dense_is_a_linear_unit_times_a_sigmoid_gate():
    torch.manual_seed(0)
    layer = GatedDense(5, 3)
    x = torch.randn(4, 5)
    w, v = layer.linear.weight.split(3)
    b, c = layer.linear.bias.split(3)
    torch.testing.assert_close(layer(x), (x @ w.T + b) * torch.sigmoid(x @ v.T + c))


def test_gated_mlp_maps_images_to_flat_outputs_with_a_linear_last_layer():
    net = NETWORKS.build(
        "gated_mlp", {"hidden": [7, 6]}, "model.encoder", in_shape=(1, 4, 4), out_shape=(10,), vocab_size=None
    )
    assert isinstance(net, GatedMLP) and net(torch.rand(3, 1, 4, 4)).shape == (3, 10)
    assert [type(m).__name__ for m in net] == ["GatedDense", "GatedDense", "Linear"]


def test_a_gated_decoder_gets_the_data_mean_output_bias():
    cfg = RunConfig().override({"model.encoder": {"kind": "gated_mlp", "hidden": [8, 6]}, "model.likelihood": "bernoulli"})
    model = build_model(cfg.model, (12,))
    assert [m.linear.out_features for m in list(model.decoder)[:2]] == [12, 16]  # mirrored: 6 then 8 gated units
    assert output_bias(model.decoder, 12) is model.decoder[-1].bias


@pytest.mark.parametrize("hidden", [[], [0], [3.5]])
def test_gated_mlp_needs_positive_integer_widths(hidden):
    with pytest.raises(ConfigError, match="gated_mlp needs"):
        GatedMLP((4,), (2,), hidden)
