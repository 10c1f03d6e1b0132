"""Entry point the distributed tests launch under torchrun (not a test module).

NOISE_FREE=1 makes the Gaussian latent draw z = E_q[z] (every sample; a flow: its base mean's image), so a
run's result depends on the data order and the gradient arithmetic only: 2 ranks x 50 points must then equal 1 x 100.
FAULT_RANK=r with FAULT_SPEC=POINT:N arms vaelab.faults on rank r only (a killed rank).
"""

import os
import sys

if os.environ.get("NOISE_FREE"):
    from vaelab.distributions.latents import GaussianLatent

    def _mean(self, q, n, generator=None):
        return q.mean.expand(n, *q.mean.shape)

    GaussianLatent.draw = _mean

    from vaelab.distributions.flows import FlowLatent

    def _flow_mean(self, q, n, generator=None):
        z = q.base_dist.base_dist.loc
        z = z.expand(n, *z.shape)
        for t in q.transforms:
            z = t(z)  # cached, as the real draw: log q of this sample needs no inverse
        return z

    FlowLatent.draw = _flow_mean

if os.environ.get("FAULT_RANK") is not None and os.environ.get("FAULT_RANK") == os.environ.get("RANK", "0"):
    os.environ["VAELAB_FAULT"] = os.environ["FAULT_SPEC"]

from vaelab.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
