"""The acceptance figures of issue 27, measured on the enumerable models of tests/gradient_matrix.py.

    python benchmarks/estimator_checks.py [--out benchmarks/results/estimator_checks.json]

1. NVIL with IWAE-3 and sigma = 20: cosine of the mean encoder gradient (5,000 draws per point)
   with the exact one, for the whole-gradient normalization and the pre-fix signal-only one.
2. Gumbel-softmax with categorical latents: relative bias ||E g - g_exact|| / ||g_exact|| at
   tau = 1, 0.5, 0.1, soft and straight-through, ELBO (S = 3) and IWAE-3, with the extended
   densities and with the pre-fix argmax densities (``OneHotCategorical.log_prob``).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import gradient_matrix as G  # noqa: E402
from test_gradient_matrix import _nvil, _nvil_encoder_cosine, _SignalOnlyNVIL  # noqa: E402

from vaelab.estimators import relaxed  # noqa: E402


def _argmax_log_prob(logits, z, binary):
    """The pre-fix categorical densities: OneHotCategorical.log_prob takes argmax(z), no gradient in z."""
    if binary:
        return _extended(logits, z, binary)
    idx = z.argmax(-1, keepdim=True)
    return torch.log_softmax(logits, -1).expand(*z.shape).gather(-1, idx).squeeze(-1).sum(-1)


_extended = relaxed.extended_log_prob


def gumbel_bias(pre_fix: bool) -> dict:
    out = {}
    for obj_name in ("elbo", "iwae"):
        model, x = G.build("categorical")
        obj, k = G.objective(obj_name)
        exact = G.exact_gradient(model, x, "categorical", obj, k)
        for hard in (False, True):
            for tau in (1.0, 0.5, 0.1):
                patch = mock.patch.object(relaxed, "extended_log_prob", _argmax_log_prob) if pre_fix else mock.MagicMock()
                with patch:
                    d = G.draws(model, x, G.estimator("gumbel", temperature=tau, hard=hard), obj, k, chunks=100)
                key = f"{obj_name}/{'straight-through' if hard else 'soft'}/tau={tau}"
                out[key] = round(G.relative_bias(d, exact), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="benchmarks/results/estimator_checks.json")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    res = {
        "nvil_iwae3_sigma20_encoder_cosine": {
            "whole_gradient_scaled": round(_nvil_encoder_cosine(_nvil()), 3),
            "pre_fix_signal_only": round(_nvil_encoder_cosine(_nvil(_SignalOnlyNVIL)), 3),
        },
        "gumbel_categorical_relative_bias": {"fixed": gumbel_bias(False), "pre_fix": gumbel_bias(True)},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
