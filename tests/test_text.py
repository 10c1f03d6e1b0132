"""Text VAEs: vocabulary and loaders, masking, the LM baseline, evaluation, collapse diagnostics,
KL schedules, free bits, word dropout and generation."""

import math
import random

import pytest
import torch

from vaelab.cli import main
from vaelab.config import RunConfig
from vaelab.data import DataSplits, iterate_batches, load_data
from vaelab.data.text import EOS_ID, PAD_ID, UNK_ID, Vocabulary, lengths, text_splits
from vaelab.errors import ConfigError, DataError, DataNotFoundError
from vaelab.evaluation import importance_sampled_log_likelihood
from vaelab.models import build_model
from vaelab.text import (
    LanguageModel,
    decode_codes,
    evaluate_language_model,
    fit_language_model,
    homotopy,
    perplexity,
    reconstruct,
    sample_prior,
)
from vaelab.text.generate import beam_search
from vaelab.train import fit
from vaelab.train.schedule import check_schedules, kl_weight
from vaelab.train.step import compute_bound, resolve

TOPICS = [
    ["alpha", "beta", "gamma", "delta", "epsilon"],
    ["red", "green", "blue", "black", "white"],
    ["one", "two", "three", "four", "five"],
    ["cat", "dog", "cow", "pig", "hen"],
]


def topic_sentences(n: int, seed: int = 0) -> list[list[str]]:
    """Sentences of 3-7 words, all from one of four topics: a little for z to carry (the topic,
    the words), all of it learnable by an LSTM-LM once the first word is seen."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = TOPICS[rng.randrange(4)]
        out.append([rng.choice(words) for _ in range(rng.randint(3, 7))])
    return out


def tiny_data(n=400, seed=0) -> DataSplits:
    return text_splits(topic_sentences(n, seed), topic_sentences(60, seed + 1), topic_sentences(60, seed + 2), "topics")


def tiny_cfg(**over) -> RunConfig:
    base = {
        "model.encoder": {"kind": "lstm", "embed_dim": 16, "hidden": 32},
        "model.decoder": {"kind": "lstm", "embed_dim": 16, "hidden": 32},
        "model.likelihood": "categorical",
        "model.latent.dim": 4,
        "train.epochs": 1,
        "train.batch_size": 20,
        "train.lr": 3e-3,
        "train.valid_every": 0,
        "train.checkpoint_every": 0,
        "train.grad_clip": 5.0,
    }
    return RunConfig().override({**base, **over})


def tiny_model(data=None, seed=0, **over):
    data = data or tiny_data()
    torch.manual_seed(seed)
    return build_model(tiny_cfg(**over).model, data.x_shape, vocab_size=data.info["vocab_size"]), data


# --- vocabulary and loaders ---------------------------------------------------------------------


def test_vocabulary_is_built_on_train_and_pads_with_eos():
    v = Vocabulary.build([["b", "a", "b"], ["c"]])
    assert v.words[:4] == ("<pad>", "<bos>", "<eos>", "<unk>") and v.words[4:] == ("b", "a", "c")
    x = v.encode([["a", "b"], ["zzz"]])  # (2, 3): ids + <eos>, 0-padded; unseen -> <unk>
    assert x.tolist() == [[5, 4, EOS_ID], [UNK_ID, EOS_ID, PAD_ID]]
    assert v.decode(x[0]) == "a b" and lengths(x).tolist() == [3, 2]
    splits = text_splits([["a"]], [["new", "a"]], [["a"]], "t")
    assert splits.valid.tolist() == [[UNK_ID, 4, EOS_ID]] and splits.info["vocab_size"] == 5


@pytest.mark.slow
def test_ptb_loader(data_dir):
    d = load_data(RunConfig().override({"data.kind": "ptb", "data.data_dir": str(data_dir)}).data, "categorical")
    assert [t.shape[0] for t in (d.train, d.valid, d.test)] == [42068, 3370, 3761]
    assert d.train.dtype == torch.int64 and d.info["vocab_size"] == 10002  # 9,999 words incl. <unk> + 3 specials
    # ../shared/data/README.md: 887,521 / 70,390 / 78,669 words, plus one <eos> per sentence
    assert d.info["n_tokens_with_eos"] == [887521 + 42068, 70390 + 3370, 78669 + 3761]
    assert (d.train[:, 0] != PAD_ID).all() and int(d.test.max()) < 10002


def test_ptb_checksum_and_missing_file(data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("VAELAB_DATA")
    with pytest.raises(DataNotFoundError, match="ptb.train.txt not found.*vaelab download ptb"):
        load_data(RunConfig().override({"data.kind": "ptb", "data.data_dir": str(tmp_path)}).data, "categorical")
    (tmp_path / "ptb").mkdir()
    for s in ("train", "valid", "test"):
        (tmp_path / "ptb" / f"ptb.{s}.txt").write_bytes((data_dir / "ptb" / f"ptb.{s}.txt").read_bytes())
    with open(tmp_path / "ptb" / "ptb.valid.txt", "a") as f:
        f.write(" one more line \n")
    with pytest.raises(DataError, match="ptb.valid.txt: sha256 .* re-download"):
        load_data(RunConfig().override({"data.kind": "ptb", "data.data_dir": str(tmp_path)}).data, "categorical")


def test_text_loader_splits_and_errors(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("\n".join(" ".join(s) for s in topic_sentences(100)) + "\n\n")
    cfg = RunConfig().override({"data.kind": "text", "data.path": str(f)})
    d = load_data(cfg.data, "categorical")
    assert [t.shape[0] for t in (d.train, d.valid, d.test)] == [90, 5, 5]
    assert len(d.info["vocab"]) == 4 + 20
    empty = tmp_path / "e.txt"
    empty.write_text("\n  \n")
    with pytest.raises(DataError, match="no sentences"):
        load_data(cfg.override({"data.path": str(empty)}).data, "categorical")
    latin = tmp_path / "l.txt"
    latin.write_bytes("caf\u00e9 au lait\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_data(cfg.override({"data.path": str(latin)}).data, "categorical")
    with pytest.raises(DataNotFoundError, match="not found"):
        load_data(cfg.override({"data.path": str(tmp_path / "nope.txt")}).data, "categorical")


def test_bucketed_batches_cover_every_sentence_once_and_are_cut_to_length():
    d = tiny_data(n=400)
    seen, widths = [], []
    for b in iterate_batches(d.train, 20, torch.Generator().manual_seed(0), bucket=True):
        seen += b.index.tolist()
        assert b.x.shape[1] == int(lengths(b.x).max()) and torch.equal(b.mask, b.x != PAD_ID)
        widths.append(int(lengths(b.x).max() - lengths(b.x).min()))
    assert sorted(seen) == list(range(400))
    assert sum(widths) / len(widths) < 1.0  # sorted pools: sentences of (nearly) one length per batch


def test_text_models_refuse_image_parts():
    d = tiny_data()
    with pytest.raises(ConfigError, match="cannot read token sequences"):
        build_model(
            tiny_cfg(**{"model.encoder": "mlp", "model.decoder": "mlp"}).model, d.x_shape, vocab_size=d.info["vocab_size"]
        )
    with pytest.raises(ConfigError, match="categorical"):
        build_model(tiny_cfg(**{"model.likelihood": "bernoulli"}).model, d.x_shape, vocab_size=d.info["vocab_size"])
    with pytest.raises(ConfigError, match="use a text data set"):
        build_model(tiny_cfg().model, (784,))
    with pytest.raises(ConfigError, match="decoder options"):
        build_model(tiny_cfg(**{"model.encoder.word_dropout": 0.2}).model, d.x_shape, vocab_size=d.info["vocab_size"])


# --- masking and the likelihood ----------------------------------------------------------------


def test_padded_batch_nll_equals_sum_of_sentences_scored_alone():
    model, d = tiny_model()
    model.eval()
    x = d.valid[:12]  # sentences of 4..8 tokens, padded to T_max
    z = torch.randn(3, 12, 4)  # (S, B, D)
    batch = model.likelihood.log_prob(model.decode(z, x), x)  # (S, B)
    for i in range(12):
        own = x[i : i + 1, : int(lengths(x[i : i + 1]))]  # (1, n_i): no padding at all
        alone = model.likelihood.log_prob(model.decode(z[:, i : i + 1], own), own)  # (S, 1)
        torch.testing.assert_close(batch[:, i], alone[:, 0], rtol=1e-5, atol=1e-5)
    wider = torch.nn.functional.pad(x, (0, 7), value=PAD_ID)  # more padding changes nothing
    torch.testing.assert_close(model.likelihood.log_prob(model.decode(z, wider), wider), batch)
    with torch.no_grad():  # nor does it change the encoder, which reads each sentence up to its own end
        params = model.encoder(x)
        torch.testing.assert_close(model.encoder(wider), params)
        for i in range(12):
            own = x[i : i + 1, : int(lengths(x[i : i + 1]))]
            torch.testing.assert_close(model.encoder(own)[0], params[i], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("condition", ["init", "input", "both"])
def test_every_conditioning_reads_z_and_respects_padding(condition):
    model, d = tiny_model(**{"model.decoder.condition": condition})
    model.eval()
    x, z = d.valid[:6], torch.randn(2, 6, 4)  # (S, B, D)
    with torch.no_grad():
        logits = model.decode(z, x)  # (S, B, T', V)
        assert not torch.allclose(logits[0], logits[1])  # another code, another distribution over words
        scored = model.likelihood.log_prob(logits, x)  # (S, B)
        for i in range(6):
            own = x[i : i + 1, : int(lengths(x[i : i + 1]))]
            alone = model.likelihood.log_prob(model.decode(z[:, i : i + 1], own), own)[:, 0]
            torch.testing.assert_close(scored[:, i], alone, rtol=1e-5, atol=1e-5)


def test_language_model_log_prob_matches_a_word_by_word_hand_computation():
    d = tiny_data()
    torch.manual_seed(0)
    lm = LanguageModel(d.info["vocab_size"], d.x_shape[0], embed_dim=8, hidden=16).eval()
    x = d.test[:5]
    by_model = lm.log_likelihood(x)  # (5,)
    for i in range(5):
        tokens, state, total = [1] + x[i, : int(lengths(x[i : i + 1]))].tolist(), None, 0.0  # <bos> w_1 .. <eos>
        for t in range(len(tokens) - 1):
            with torch.no_grad():
                logits, state = lm.decoder.run(torch.tensor([[tokens[t]]]), None, state)
            total += float(torch.log_softmax(logits[0, -1], -1)[tokens[t + 1]])
        assert by_model[i].item() == pytest.approx(total, abs=1e-4)
    ev = evaluate_language_model(lm, x)
    n_tok = sum(int(lengths(x[i : i + 1])) for i in range(5))  # words + <eos>
    assert ev.n_tokens == n_tok and ev.ppl == pytest.approx(math.exp(-float(by_model.sum()) / n_tok), rel=1e-6)
    assert perplexity(torch.tensor([-2.0, -4.0]), torch.tensor([2, 1])) == pytest.approx(math.exp(2.0))


def test_importance_sampled_log_likelihood_is_above_the_elbo_for_every_sentence():
    model, d = tiny_model()
    res = importance_sampled_log_likelihood(model, d.test[:16], k=50, batch_size=8, seed=0)
    assert (res.per_point >= res.per_point_elbo - 1e-5).all()
    assert (res.per_point > res.per_point_elbo + 1e-3).any()  # strictly, where q is not the posterior


# --- training tricks -----------------------------------------------------------------------------


def test_kl_annealing_schedules():
    assert [kl_weight(1.0, "linear", 100, s) for s in (0, 50, 100, 300)] == [0.0, 0.5, 1.0, 1.0]
    sig = [kl_weight(1.0, "sigmoid", 100, s) for s in (0, 10, 50, 100, 150)]
    assert sig[0] == 0.0 and sig[2] == pytest.approx(0.5) and sig[3] == sig[4] == 1.0  # exactly 0 and 1 at the ends
    assert 0 < sig[1] < 0.05 and sig == sorted(sig)
    cyc = [kl_weight(2.0, "cyclical", 100, s, 0.5) for s in (0, 25, 50, 99, 100, 125)]
    assert cyc == [0.0, 1.0, 2.0, 2.0, 0.0, 1.0]  # rises over half of each 100-step cycle, then restarts
    assert kl_weight(0.7, "sigmoid", 0, 10) == 0.7
    with pytest.raises(ConfigError, match="kl_warmup_steps > 0"):
        check_schedules(RunConfig().override({"train.kl_anneal": "cyclical"}).train)
    with pytest.raises(ConfigError, match="kl_cycle_ratio applies"):
        check_schedules(RunConfig().override({"train.kl_cycle_ratio": 0.3}).train)


def test_free_bits_stop_the_kl_gradient_below_lambda_and_report_the_true_elbo():
    model, d = tiny_model()
    x = d.train[:20]
    objective, estimator = resolve("elbo", "reparam")
    groups = model.parameter_groups()
    enc = groups["inference"]

    def grads(free_bits):
        torch.manual_seed(3)
        est, stats = compute_bound(model, x, objective, estimator, 1, "analytic", 1.0, free_bits)
        g = torch.autograd.grad(est.inference.mean(), enc, allow_unused=True)
        return [gi if gi is not None else torch.zeros_like(p) for gi, p in zip(g, enc)], stats

    g_fb, stats_fb = grads(100.0)  # every dimension's KL is far below 100 nats: no KL gradient at all
    torch.manual_seed(3)
    terms = model.log_weight_terms(x, 1)
    g_rec = torch.autograd.grad(terms.log_px_z.mean(), enc, allow_unused=True)
    for a, b in zip(g_fb, g_rec):
        torch.testing.assert_close(a, b if b is not None else torch.zeros_like(a))
    _, stats = grads(0.0)
    assert float(stats_fb["bound"]) == pytest.approx(float(stats["elbo"]), abs=1e-5)  # logged: the true ELBO
    # lambda between the dimensions' batch-mean KLs: the clamped ones lose their KL gradient, the others keep it
    from vaelab.distributions.prior import kl_per_variable

    torch.manual_seed(3)
    terms = model.log_weight_terms(x, 1)
    kl_dims = kl_per_variable(terms.posterior, model.prior).mean(0)  # (D,)
    lam = float(kl_dims.detach().median())
    kept = kl_dims >= lam
    assert 0 < int(kept.sum()) < len(kl_dims)
    g_part, _ = grads(lam)
    target = terms.log_px_z.mean() - kl_dims[kept].sum()
    g_ref = torch.autograd.grad(target, enc, allow_unused=True)
    for a, b in zip(g_part, g_ref):
        torch.testing.assert_close(a, b if b is not None else torch.zeros_like(a))
    with pytest.raises(ConfigError, match="free bits"):
        compute_bound(model, x, *resolve("iwae", "reparam"), 2, "mc", 1.0, 0.5)


def test_word_dropout_only_in_training():
    model, d = tiny_model(**{"model.decoder.word_dropout": 1.0})
    x, z = d.valid[:6], torch.randn(6, 4)
    model.train()
    dropped = model.decode(z, x)
    all_unk = torch.full_like(x, UNK_ID).masked_fill(x == PAD_ID, PAD_ID)  # every input word -> <unk>, <bos> kept
    torch.testing.assert_close(dropped, model.decode(z, all_unk))
    model.eval()
    kept = model.decode(z, x)
    assert not torch.allclose(dropped[:, 1:], kept[:, 1:])
    model.decoder.word_dropout = 0.0
    torch.testing.assert_close(model.decode(z, x), kept)


# --- collapse and information --------------------------------------------------------------------


def iid_sentences(n: int, seed: int) -> list[list[str]]:
    """3-7 words drawn uniformly from 20: a unigram LM models it exactly, so a code can only
    memorize words at a KL cost at least what it saves, and the ELBO optimum is collapse."""
    rng = random.Random(seed)
    return [[f"w{rng.randrange(20)}" for _ in range(rng.randint(3, 7))] for _ in range(n)]


@pytest.mark.slow
def test_collapse_without_tricks_and_information_with_kl_weight_zero(tmp_path):
    from vaelab.text.metrics import evaluate_text_vae

    d = text_splits(iid_sentences(400, 0), iid_sentences(60, 1), iid_sentences(60, 2), "iid")
    lm, _ = fit_language_model(d, epochs=8, batch_size=20, lr=3e-3, embed_dim=16, hidden=32, log=lambda s: None)
    seen = d.train[:100]  # both models scored on sentences they were trained on: how much each one captured
    lm_nll = evaluate_language_model(lm, seen).nll
    plain = fit(tiny_cfg(**{"train.epochs": 8, "train.lr": 1e-2}), tmp_path / "plain", data=d, quiet=True, tensorboard=False)
    ev = evaluate_text_vae(plain.model, d.test, k=20, batch_size=30)
    assert ev.kl < 0.01 and ev.active_units == 0  # collapsed: q(z|x) = p(z), the decoder is an LM
    free = fit(
        tiny_cfg(**{"train.epochs": 15, "train.lr": 1e-2, "train.beta": 0.0}),
        tmp_path / "beta0",
        data=d,
        quiet=True,
        tensorboard=False,
    )
    ev0 = evaluate_text_vae(free.model, seen, k=20, batch_size=30)
    assert ev0.active_units > 0 and ev0.mutual_info > 1.0
    assert -ev0.rec < lm_nll - 2.0  # the code carries words that no language model can predict


# --- generation ----------------------------------------------------------------------------------


def test_greedy_beam_and_sampled_decoding_agree_with_the_model(tmp_path):
    model, d = tiny_model()
    fit(
        tiny_cfg(**{"train.epochs": 3, "train.beta": 0.0}),
        tmp_path / "r",
        model=model,
        data=d,
        quiet=True,
        tensorboard=False,
    )
    model.eval()
    z = torch.randn(4, 4)
    greedy = decode_codes(model, z, "greedy", max_length=12)
    for i, ids in enumerate(greedy):  # each greedy word is the argmax of the teacher-forced logits
        ended = ids + [EOS_ID] if len(ids) < 12 else ids  # <eos> predicted, or the length limit reached
        x = torch.tensor([ended])
        with torch.no_grad():
            logits = model.decode(z[i : i + 1], x)[0]  # (T, V)
        logits[:, :2] = float("-inf")
        assert logits.argmax(-1).tolist() == ended
    assert decode_codes(model, z, "beam", beam_width=1, max_length=12) == greedy

    def score(ids, zi):  # log p(words, <eos>): a sentence cut at the limit has no <eos> to score
        x = torch.tensor([ids + [EOS_ID]] if len(ids) < 12 else [ids])
        with torch.no_grad():
            return float(model.likelihood.log_prob(model.decode(zi, x), x))

    beam = decode_codes(model, z, "beam", beam_width=8, max_length=12)
    assert all(score(b, z[i : i + 1]) >= score(g, z[i : i + 1]) - 1e-5 for i, (b, g) in enumerate(zip(beam, greedy)))
    for i in range(4):  # the beam's running scores are the model's own log-probabilities
        ids, logp = beam_search(model.decoder, z[i : i + 1], 8, 12)
        assert ids == beam[i] and logp == pytest.approx(score(ids, z[i : i + 1]), abs=1e-4)
    s1 = decode_codes(model, z, "sample", generator=torch.Generator().manual_seed(5))
    assert s1 == decode_codes(model, z, "sample", generator=torch.Generator().manual_seed(5))
    path = homotopy(model, d.test[0], d.test[1], steps=5)
    ends = reconstruct(model, d.test[:2])
    assert len(path) == 5 and path[0] == ends[0] and path[-1] == ends[1]
    with pytest.raises(ConfigError, match="decoding method"):
        decode_codes(model, z, "nucleus")
    torch.manual_seed(0)
    assert len(sample_prior(model, 3)) == 3


def test_train_on_a_text_file_and_sample_from_the_cli(tmp_path, capsys):
    f = tmp_path / "corpus.txt"
    f.write_text("\n".join(" ".join(s) for s in topic_sentences(200)))
    run = tmp_path / "run"
    args = [
        "train",
        "--dataset",
        "text",
        "--path",
        str(f),
        "--encoder",
        "lstm",
        "--likelihood",
        "categorical",
        "--z-dim",
        "4",
        "--set",
        "model.encoder.hidden=16",
        "--set",
        "model.encoder.embed_dim=8",
        "--epochs",
        "1",
        "--batch-size",
        "20",
        "--kl-anneal",
        "sigmoid",
        "--kl-warmup-steps",
        "5",
        "--out",
        str(run),
        "--quiet",
    ]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "4", "--method", "sample", "--max-length", "9"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    vocab = {w for t in TOPICS for w in t}
    assert len(lines) == 4 and all(set(line.split()) <= vocab | {"<unk>"} or line.startswith("(empty") for line in lines)
    assert any(len(line.split()) > 1 for line in lines)
    assert main(["evaluate", str(run), "--k", "5", "--limit", "6", "--data-dir", str(tmp_path)]) == 0
    assert "perplexity" in capsys.readouterr().out
    assert main(["plot", str(run)]) == 0 and (run / "latent.png").is_file() and not (run / "samples.png").exists()
    assert main(["train", "--dataset", "text", "--path", str(f), "--epochs", "1", "--out", str(tmp_path / "r2")]) == 2
    assert "cannot read token sequences" in capsys.readouterr().err


@pytest.mark.slow
def test_reproduce_ptb_vae_quick(tmp_path, data_dir):
    out = tmp_path / "ptb"
    assert main(["reproduce", "ptb-vae", "--quick", "--data-dir", str(data_dir), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    for label in ("LSTM-LM (no latent)", "VAE, no tricks", "VAE + KL annealing", "word dropout", "free bits"):
        assert label in text
    assert text.count("## Homotopies") == 1 and (out / "results.json").is_file()
    assert "| ≈ 99 | ≈ 2 | paper |" in text  # Bowman et al.'s reconstruction + KL, status from shared/REFERENCES.md


def test_download_ptb_verifies_checksums_and_leaves_nothing_on_failure(data_dir, tmp_path):
    from vaelab.data.text import download_ptb

    served = tmp_path / "server"
    served.mkdir()
    for s in ("train", "valid", "test"):
        (served / f"ptb.{s}.txt").write_bytes((data_dir / "ptb" / f"ptb.{s}.txt").read_bytes())
    url = served.as_uri() + "/ptb.{split}.txt"
    got = download_ptb(tmp_path / "ok", url)
    assert sorted(p.name for p in got.iterdir()) == ["ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"]
    (served / "ptb.test.txt").write_text("a b c\n")  # a different file under the same name
    with pytest.raises(DataError, match="sha256"):
        download_ptb(tmp_path / "bad", url)
    assert sorted(p.name for p in (tmp_path / "bad" / "ptb").iterdir()) == ["ptb.train.txt", "ptb.valid.txt"]
    with pytest.raises(DataNotFoundError, match="could not download"):
        download_ptb(tmp_path / "off", (tmp_path / "nowhere").as_uri() + "/ptb.{split}.txt")
    assert list((tmp_path / "off" / "ptb").iterdir()) == []
