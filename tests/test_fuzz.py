"""Bad input, fuzzed with hypothesis: random and truncated bytes, odd dtypes and shapes, NaN/Inf,
unknown keys, wrong types and out-of-range values, into every loader, the TOML config and the CLI.

The contract: only vaelab's own exceptions (VaelabError), each with a one-line message, escape;
the CLI exits 0 or 2 and never prints a traceback.
"""

import contextlib
import gzip
import io
import pickle
import string
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from vaelab import config as config_mod
from vaelab.cli import main
from vaelab.data import load_data
from vaelab.data.mnist import load_mnist
from vaelab.data.static_mnist import read_amat
from vaelab.errors import VaelabError
from vaelab.train.run import make_data_and_model

FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


def _only_vaelab_errors(fn, *args, **kwargs):
    """Run ``fn``; a VaelabError must have a one-line message; anything else escapes (a failure)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a warning is a fine answer to odd but usable input
            return fn(*args, **kwargs)
    except VaelabError as e:
        assert "\n" not in str(e) and str(e), repr(e)
        return e


def _through_training_setup(path: Path, likelihood: str):
    cfg = config_mod.RunConfig().override(
        {
            "data.kind": "array",
            "data.path": str(path),
            "model.likelihood": likelihood,
            "model.encoder.hidden": [4],
            "model.latent.dim": 2,
        }
    )
    return make_data_and_model(cfg)


def _dir():
    return tempfile.TemporaryDirectory()


# --- array files: .npy, .npz, .csv -----------------------------------------------------------------

ODD_DTYPES = st.one_of(
    hnp.floating_dtypes(),
    hnp.integer_dtypes(),
    hnp.boolean_dtypes(),
    hnp.complex_number_dtypes(),
    hnp.unicode_string_dtypes(max_len=3),
    hnp.datetime64_dtypes(),
)
# conftest flushes denormals (as training does), so hypothesis may not draw subnormal floats
ARRAYS = hnp.arrays(
    ODD_DTYPES, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5), elements={"allow_subnormal": False}
)


@FUZZ
@given(
    x=ARRAYS,
    labels=st.one_of(st.none(), hnp.arrays(np.int64, st.integers(0, 8))),
    suffix=st.sampled_from([".npy", ".npz", ".csv"]),
    likelihood=st.sampled_from(["gaussian", "bernoulli"]),
)
def test_any_array_file_loads_or_says_why(x, labels, suffix, likelihood):
    with _dir() as d:
        path = Path(d) / f"x{suffix}"
        if suffix == ".npy":
            np.save(path, x)
        elif suffix == ".npz":
            np.savez(path, x=x, **({} if labels is None else {"y": labels}))
        else:
            _write_csv(path, x)
        _only_vaelab_errors(_through_training_setup, path, likelihood)


def _write_csv(path, x):
    try:
        np.savetxt(path, np.atleast_2d(x) if x.ndim < 3 else x.reshape(x.shape[0], -1), delimiter=",", fmt="%s")
    except (ValueError, TypeError):
        path.write_text(str(x.tolist()))


@FUZZ
@given(data=st.binary(max_size=2000), suffix=st.sampled_from([".npy", ".npz", ".csv", ".txt", ""]))
def test_random_bytes_as_an_array_file(data, suffix):
    with _dir() as d:
        path = Path(d) / f"x{suffix}"
        path.write_bytes(data)
        _only_vaelab_errors(_through_training_setup, path, "gaussian")


@FUZZ
@given(cut=st.floats(0, 1, exclude_max=True, allow_subnormal=False), suffix=st.sampled_from([".npy", ".npz", ".csv"]))
def test_truncated_array_files(cut, suffix):
    x = np.random.default_rng(0).random((20, 6))
    with _dir() as d:
        path = Path(d) / f"x{suffix}"
        {
            ".npy": lambda: np.save(path, x),
            ".npz": lambda: np.savez(path, x=x),
            ".csv": lambda: np.savetxt(path, x, delimiter=","),
        }[suffix]()
        data = path.read_bytes()
        path.write_bytes(data[: int(cut * len(data))])
        _only_vaelab_errors(_through_training_setup, path, "gaussian")


def test_mismatched_labels_and_non_finite_values_are_named():
    with _dir() as d:
        np.savez(Path(d) / "a.npz", x=np.ones((10, 3)), y=np.arange(4))
        assert "labels" in str(_only_vaelab_errors(_through_training_setup, Path(d) / "a.npz", "gaussian"))
        np.save(Path(d) / "b.npy", np.array([[0.0, np.nan]] * 10))
        assert "NaN" in str(_only_vaelab_errors(_through_training_setup, Path(d) / "b.npy", "gaussian"))
        np.save(Path(d) / "c.npy", np.full((10, 3), 1.5))
        assert "[0, 1]" in str(_only_vaelab_errors(_through_training_setup, Path(d) / "c.npy", "bernoulli"))


# --- the canonical data files: mnist.pkl.gz, binarized MNIST .amat / .mat, text corpora --------------

PICKLED = st.recursive(
    st.one_of(
        st.none(),
        st.integers(),
        st.floats(allow_subnormal=False),
        st.text(max_size=5),
        hnp.arrays(np.float32, hnp.array_shapes(max_dims=2, max_side=4), elements={"allow_subnormal": False}),
    ),
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.tuples(kids, kids, kids)),
    max_leaves=8,
)


@pytest.mark.slow
@FUZZ
@given(payload=st.one_of(st.binary(max_size=500), PICKLED.map(lambda o: gzip.compress(pickle.dumps(o)))))
def test_a_wrong_mnist_pickle_is_never_unpickled(payload):
    with _dir() as d:
        (Path(d) / "mnist.pkl.gz").write_bytes(payload)
        e = _only_vaelab_errors(load_mnist, d)
        assert isinstance(e, VaelabError) and "canonical" in str(e)


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=500),
        st.text(alphabet="01 \n\t2x.", max_size=500).map(str.encode),
        st.binary(max_size=300).map(lambda b: b"MATLAB 5.0 MAT-file" + b),
    )
)
def test_random_static_mnist_files(data):
    with _dir() as d:
        path = Path(d) / "binarized_mnist_valid.amat"
        path.write_bytes(data)
        assert isinstance(_only_vaelab_errors(read_amat, path, "valid"), VaelabError)


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.lists(st.text(alphabet=string.ascii_lowercase + " ", max_size=12), max_size=40).map(
            lambda ls: "\n".join(ls).encode()
        ),
    ),
    max_length=st.integers(0, 3),
    max_vocab=st.integers(0, 3),
)
def test_random_text_corpora(data, max_length, max_vocab):
    with _dir() as d:
        path = Path(d) / "corpus.txt"
        path.write_bytes(data)
        cfg = config_mod.RunConfig().override(
            {"data.kind": "text", "data.path": str(path), "data.max_length": max_length, "data.max_vocab": max_vocab}
        )
        _only_vaelab_errors(load_data, cfg.data, "categorical")


@FUZZ
@given(
    data=st.one_of(st.binary(max_size=400), st.binary(max_size=300).map(lambda b: b"MATLAB 5.0 MAT-file" + b)),
    reader=st.sampled_from(["frey", "caltech"]),
)
def test_random_frey_and_caltech_files(data, reader):
    from vaelab.data.caltech import read_caltech
    from vaelab.data.frey import read_frey

    with _dir() as d:
        path = Path(d) / "x.mat"
        path.write_bytes(data)
        fn = {"frey": read_frey, "caltech": read_caltech}[reader]
        assert isinstance(_only_vaelab_errors(fn, path), VaelabError)


# --- configuration: TOML text, tables, values ------------------------------------------------------

KEYS = [f"{sec}.{k}" for sec in ("data", "model", "train") for k in config_mod.component_fields(sec)] + [
    "train.nonexistent",
    "model.latent.dim",
    "model.prior.components",
    "data.n_train",
    "bogus",
    "train.objective.groups",
]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_subnormal=False),
    st.text(max_size=8),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@FUZZ
@given(text=st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))))
def test_random_toml_text(text):
    with _dir() as d:
        path = Path(d) / "c.toml"
        path.write_text(text, errors="surrogateescape")
        _only_vaelab_errors(config_mod.load, path)


@FUZZ
@given(over=st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4))
def test_random_config_values(over):
    _only_vaelab_errors(config_mod.RunConfig().override, over)


@FUZZ
@given(
    tables=st.dictionaries(
        st.sampled_from(["data", "model", "train", "extra"]),
        st.dictionaries(st.sampled_from([k.split(".", 1)[-1] for k in KEYS]), VALUES, max_size=3),
        max_size=3,
    )
)
def test_random_config_tables(tables):
    _only_vaelab_errors(config_mod.from_dict, tables)


# --- the command line ----------------------------------------------------------------------------

WORDS = [
    "train",
    "evaluate",
    "compare",
    "sample",
    "plot",
    "--epochs",
    "0",
    "-1",
    "1e9",
    "nan",
    "--batch-size",
    "--lr",
    "--k",
    "--set",
    "train.beta=-1",
    "train.n_samples=0",
    "model.latent.dim=x",
    "bogus=1",
    "--config",
    "/nonexistent.toml",
    "--dataset",
    "array",
    "mnist",
    "--path",
    "/nonexistent.npy",
    "--resume",
    "--out",
    "--objective",
    "iwae",
    "--estimator",
    "dreg",
    "--prior",
    "vamp",
    "--split",
    "--checkpoint",
    "last",
    "--latent",
    "bernoulli",
    "-n",
    "--method",
    "beam",
    "--quiet",
    "RUN",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(argv=st.lists(st.sampled_from(WORDS), min_size=1, max_size=8))
def test_random_command_lines(argv):
    with _dir() as d:
        argv = [a.replace("RUN", d + "/run") for a in argv]
        if "train" in argv:  # never a real training run: at most 0 epochs into a scratch folder
            argv += ["--epochs", "0", "--out", d + "/out"]
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                code = main(argv)
            except SystemExit as e:  # argparse: usage line + error line, status 2
                code = e.code
        assert code in (0, 2), (argv, code, err.getvalue())
        assert "Traceback" not in err.getvalue()
        if code == 2 and err.getvalue().startswith("error: "):
            assert err.getvalue().count("\n") == 1, err.getvalue()


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--set", "train.batch_size=0"],
        ["train", "--set", "train.beta=-1"],
        ["train", "--set", "train.n_samples=-3"],
        ["train", "--set", "train.epochs=-1"],
    ],
)
def test_out_of_range_values_exit_2_with_one_line(argv, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: config key") and err.count("\n") == 1


# --- checkpoints from an untrusted source ----------------------------------------------------------


class _Boom:
    def __reduce__(self):  # unpickling this would run code
        return (exec, ("raise SystemExit('arbitrary code ran')",))


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory):
    from vaelab.train import fit

    run = tmp_path_factory.mktemp("ckpt") / "r"
    fit(
        config_mod.RunConfig().override(
            {"data.n_train": 100, "train.epochs": 1, "model.encoder.hidden": [4], "train.num_threads": 1}
        ),
        run,
        quiet=True,
        tensorboard=False,
    )
    return (run / "last.pt").read_bytes()


@FUZZ
@given(cut=st.floats(0, 1, exclude_max=True, allow_subnormal=False), flip=st.lists(st.integers(0, 10**6), max_size=3))
def test_truncated_or_corrupted_checkpoints(good_checkpoint, cut, flip):
    from vaelab.checkpoint import load_checkpoint

    data = bytearray(good_checkpoint[: int(cut * len(good_checkpoint))])
    for i in flip:
        if data:
            data[i % len(data)] ^= 0xFF
    with _dir() as d:
        (Path(d) / "last.pt").write_bytes(bytes(data))
        assert isinstance(_only_vaelab_errors(load_checkpoint, Path(d) / "last.pt"), VaelabError)


def test_a_checkpoint_that_would_run_code_is_refused(tmp_path):
    import torch

    from vaelab.checkpoint import load_checkpoint
    from vaelab.errors import CheckpointError

    torch.save({"model": {}, "config": {}, "payload": _Boom()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_checkpoint(tmp_path / "evil.pt")  # weights_only=True: the pickle's code never runs


# --- every numeric CLI option, at parse time ---------------------------------------------------------


def _numeric_options():
    """(subcommand, option string, the action) for every option of every subcommand that takes a number."""
    import argparse

    from vaelab.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        for action in parser._actions:
            if action.option_strings and action.type is not None and action.type not in (str,):
                yield name, action.option_strings[0], action


NUMERIC = list(_numeric_options())


def test_every_numeric_option_is_validated_at_parse_time():
    from vaelab.cli_types import positive_float

    plain = [(c, o) for c, o, a in NUMERIC if a.type in (int, float)]
    # [train]'s own fields are checked by the config (one-line ConfigError); every other number by its type
    train_fields = {"--" + f.name.replace("_", "-") for f in config_mod.fields(config_mod.TrainConfig)}
    assert [(c, o) for c, o in plain if not (c in ("train", "sweep") and o in train_fields)] == []
    assert any(a.type is positive_float for _, _, a in NUMERIC)


BAD_TEXT = st.one_of(
    st.integers(-(2**70), 2**70).map(str), st.floats(allow_nan=True, allow_subnormal=False).map(str), st.text(max_size=4)
)


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(option=st.sampled_from([(c, o) for c, o, a in NUMERIC if a.type not in (int, float)]), value=BAD_TEXT)
def test_numeric_options_reject_bad_values_with_one_line(option, value):
    command, flag = option
    argv = [command, *(["RUN"] if command in ("evaluate", "sample", "plot") else []), f"{flag}={value}"]
    if command == "reproduce":
        argv.insert(1, "two-gaussians")
    if command == "sweep":
        argv.append("--space=space.toml")  # required: the error must be about the number, not this
    from vaelab.cli import build_parser

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as e:
            assert e.code == 2
            last = err.getvalue().strip().splitlines()[-1]
            assert f"argument {flag}" in last and "Traceback" not in err.getvalue(), err.getvalue()
            return
    got = getattr(args, next(a.dest for c, o, a in NUMERIC if (c, o) == option))
    for v in got if isinstance(got, list) else [got]:
        assert v >= 0 and v == v and v != float("inf")  # accepted values are in range


@pytest.mark.parametrize(
    "argv, says",
    [
        (["evaluate", "RUN", "--k", "0"], "--k: must be >= 1"),
        (["evaluate", "RUN", "--batch-size", "0"], "--batch-size: must be >= 1"),
        (["evaluate", "RUN", "--limit", "-1"], "--limit: must be >= 0"),
        (["evaluate", "RUN", "--k-iwae", "0"], "--k-iwae: must be >= 1"),
        (["sample", "RUN", "-n", "0"], "-n: must be >= 1"),
        (["sample", "RUN", "-n", "-3"], "-n: must be >= 1"),
        (["train", "--nproc", "0"], "--nproc: must be >= 1"),
    ],
)
def test_newcomer_numbers_exit_2_before_touching_the_run(argv, says, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert e.value.code == 2 and f"argument {says}" in last, last
