"""The data-set registry: name -> loader returning :class:`DataSplits`.

Context the builder passes: ``data_dir`` (``data.data_dir`` or None; loaders fall back on
``$VAELAB_DATA``) and ``seed`` (``data.seed``, for generating / splitting / test binarization).
Every other keyword argument with a default is a loader option in the ``[data]`` table.
"""

from ..registry import Registry

DATASETS = Registry("data set", context=("data_dir", "seed"))
