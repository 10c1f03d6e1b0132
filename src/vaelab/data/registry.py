"""The data-set registry: name -> loader returning :class:`DataSplits`.

Context the builder passes: ``data_dir`` (``data.data_dir`` or None; loaders fall back on
``$VAELAB_DATA``) and ``seed`` (``data.seed``, for generating / splitting / test binarization).
Every other keyword argument with a default is a loader option in the ``[data]`` table.
"""

from collections.abc import Callable

from ..registry import Registry

DATASETS = Registry("data set", context=("data_dir", "seed"))

#: data set -> ``download(data_dir)``, which fetches its files and verifies their checksums (`vaelab download`)
DOWNLOADS = Registry("downloadable data set")


def pixel_intensities(loader: Callable) -> Callable:
    """Mark a registered loader whose points are pixel intensities in [0, 1] (or binary images): a
    Bernoulli decoder, with dynamic binarization where needed, is then the field's default
    (Kingma & Welling 2014; Burda et al. 2016), and ``vaelab train`` picks it when no likelihood is given."""
    loader.default_likelihood = "bernoulli"  # type: ignore[attr-defined]
    return loader


def default_likelihood(kind: str) -> str:
    """The decoder likelihood ``vaelab train`` uses for data set ``kind`` when none is configured."""
    if kind in DATASETS:
        return getattr(DATASETS[kind], "default_likelihood", "gaussian")
    return "gaussian"
