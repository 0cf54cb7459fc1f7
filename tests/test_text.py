"""Text: the dataset (vocabulary, one-hot, 32 characters), the language model's networks, the
penalty on (sequence x vocabulary) inputs, the n-gram Jensen-Shannon metrics, and a tiny run."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from helpers import ROOT
from wgan.config import build, build_dataset, compose_config
from wandb_records import read_run
from wgan.dataset import DatasetNotFound
from wgan.dataset.text import BILLION_WORD_FOLDER, BILLION_WORD_TRAIN, BILLION_WORD_URL, PAD, UNKNOWN, encode
from wgan.lipschitz import GradientPenalty
from wgan.metrics import EvalContext
from wgan.metrics.text import js_divergence, ngram_js, ngrams
from wgan.schema import ConfigError

LICENSES = Path("/usr/share/common-licenses")  # Debian's base-files: text on every Debian machine
# The language model at a width that builds and trains in moments.
TINY_MODEL = ["arch.dim=8", "arch.blocks=1"]


@pytest.fixture
def corpus(tmp_path) -> Path:
    """A small corpus with known lines: short, blank, indented and over-long ones."""
    lines = [f"the cat sat on mat number {i}" for i in range(30)]
    lines += ["", "   indented line   ", "x" * 40]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def text_config(*overrides: str, files: Path | str = LICENSES):
    return compose_config(["logger=none", "dataset=text", "dataset.source=files", f"dataset.files=[{files}]",
                           *TINY_MODEL, *overrides])


def test_encoding_keeps_the_most_common_characters_and_pads_to_the_length():
    lines, vocab = encode(["ab", "abc"], seq_len=4, vocab_size=3)
    # Padded: "ab``", "abc`": ` 3 times, a and b twice (tie: code-point order), c once (left out).
    assert vocab == [UNKNOWN, PAD, "a"]
    assert lines.tolist() == [[2, 0, 1, 1], [2, 0, 0, 1]]


def test_lines_are_cut_or_padded_to_32_and_round_trip_through_one_hot(corpus):
    dataset = build_dataset(text_config("dataset.heldout_fraction=0.25", files=corpus))
    expected = {line.ljust(32, PAD) for line in [f"the cat sat on mat number {i}" for i in range(30)]}
    expected |= {"indented line".ljust(32, PAD), "x" * 32}  # stripped; cut to 32; the blank line skipped
    decoded = set(dataset.decode(torch.cat([dataset.lines, dataset.heldout])))
    assert decoded == expected and len(dataset.lines) + len(dataset.heldout) == 32
    assert len(dataset.heldout) == 8  # a quarter of the 32 sentences
    batch = dataset.sample(50, generator=torch.Generator().manual_seed(0))
    assert batch.shape == (50, 32, len(dataset.vocab)) == (50, *dataset.shape)
    assert torch.equal(batch.sum(dim=-1), torch.ones(50, 32))  # one-hot
    assert set(dataset.decode(batch.argmax(dim=-1))) <= set(dataset.decode(dataset.lines))


def test_the_vocabulary_is_capped_and_unknown_characters_decode_as_such(corpus):
    dataset = build_dataset(text_config("dataset.vocab_size=4", files=corpus))
    assert len(dataset.vocab) == 4 and dataset.vocab[0] == UNKNOWN and dataset.shape == (32, 4)
    assert dataset.vocab[1:] == [" ", PAD, "t"]  # the most common: spaces, padding, then t
    assert "".join(dataset.decode(dataset.lines)).strip(PAD + " t" + UNKNOWN) == ""


def test_ngrams_are_numbered_in_base_vocabulary():
    assert ngrams(torch.tensor([[0, 1, 2]]), 2, 3).tolist() == [0 * 3 + 1, 1 * 3 + 2]
    assert ngrams(torch.tensor([[0, 1, 2], [2, 2, 2]]), 3, 3).tolist() == [5, 26]


def test_js_divergence_in_bits_against_hand_computed_values():
    assert js_divergence(ngrams(torch.tensor([[1, 2, 3]]), 1, 4), ngrams(torch.tensor([[3, 2, 1]]), 1, 4)) == 0
    assert js_divergence(torch.tensor([1, 1, 2]).numpy(), torch.tensor([3, 4]).numpy()) == pytest.approx(1.0)
    # p = (1/2, 1/2), q = (1, 0), m = (3/4, 1/4): KL(p||m) = 1/2 log2(2/3) + 1/2, KL(q||m) = log2(4/3).
    expected = 0.5 * (0.5 * math.log2(2 / 3) + 0.5 + math.log2(4 / 3))
    assert js_divergence(torch.tensor([0, 1]).numpy(), torch.tensor([0, 0, 0]).numpy()) == pytest.approx(expected)


def test_ngram_js_is_zero_for_the_held_out_text_itself_and_named_by_the_count():
    cfg = text_config()
    dataset = build_dataset(cfg)
    values = ngram_js(EvalContext(len(dataset.heldout), None, dataset, cfg), dataset.heldout)
    count = len(dataset.heldout)
    assert values == {f"js{n}_{count}": 0.0 for n in (1, 2, 3, 4)}
    unrelated = ngram_js(EvalContext(64, None, dataset, cfg), torch.zeros(64, 32, dtype=torch.long))
    assert unrelated["js1_64"] == pytest.approx(1.0)  # only index 0, which the held-out text never has


def test_the_networks_shapes_and_the_official_settings():
    cfg = compose_config(["dataset=text"])
    assert (cfg.arch.noise_dim, cfg.arch.dim, cfg.arch.blocks, cfg.arch.kernel, cfg.arch.residual_scale) == (
        128, 512, 5, 5, 0.3)
    assert (cfg.train.n_critic, cfg.train.batch_size, cfg.lipschitz.lam) == (10, 64, 10.0)
    assert (cfg.optimizer.critic.lr, list(cfg.optimizer.critic.betas)) == (1e-4, [0.5, 0.9])
    assert list(cfg.optimizer.generator.betas) == [0.5, 0.9] and cfg.metrics.names == ["ngram_js"]
    onesided = compose_config(["dataset=text", "lipschitz=gp_onesided"])
    assert (onesided.train.n_critic, onesided.lipschitz.one_sided, list(onesided.optimizer.generator.betas)) == (
        10, True, [0.5, 0.9])
    gan = compose_config(["dataset=text", "method=dcgan"])
    assert (gan.arch.name, gan.loss.name, gan.lipschitz.name, gan.train.n_critic) == ("text_resnet", "gan", "none", 1)
    arch = build(compose_config(["dataset=text", "arch.dim=16", "arch.blocks=2"]).arch)
    generator, critic = arch.generator((32, 7)), arch.critic((32, 7))
    fake = generator(generator.sample_noise(3, "cpu"))
    assert fake.shape == (3, 32, 7) and torch.allclose(fake.sum(dim=-1), torch.ones(3, 32))  # softmax rows
    assert critic(fake).shape == (3,)
    convs = [m for m in critic.modules() if isinstance(m, nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0]) for c in convs] == [(7, 16, 1)] + [(16, 16, 5)] * 4
    # tflib's Conv1D he_init: std sqrt(4 / (fan_in + fan_out)), fan = channels x kernel; uniform +-sqrt(3) std.
    assert float(convs[1].weight.detach().abs().max()) <= math.sqrt(3) * math.sqrt(4 / (16 * 5 + 16 * 5))
    with pytest.raises(ConfigError, match="arch=text_resnet needs text"):
        arch.generator((3, 32, 32))


def test_the_penalty_is_over_the_whole_sequence_by_vocabulary_input():
    torch.manual_seed(0)
    weight = torch.randn(32 * 5)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(32 * 5, 1, bias=False), nn.Flatten(0))
    with torch.no_grad():
        critic[1].weight.copy_(weight)
    real, fake = torch.rand(6, 32, 5), torch.rand(6, 32, 5)
    penalty, norms = GradientPenalty(lam=10.0).penalty(critic, real, fake)
    # A linear critic's input gradient is its weight: the norm over all 32 x 5 entries, for every sample.
    assert torch.allclose(norms, weight.norm().expand(6))
    assert float(penalty.detach()) == pytest.approx(10 * (float(weight.norm()) - 1) ** 2, rel=1e-5)


@pytest.mark.slow
def test_a_tiny_run_writes_the_js_metrics_and_text_samples_to_files_and_wandb_and_the_metrics_command_agrees(
        tmp_path, corpus):
    run_dir = tmp_path / "run"
    environment = {**os.environ, "WANDB_MODE": "offline", "NETRC": str(tmp_path / "no-netrc")}
    trained = subprocess.run(
        [sys.executable, "run.py", "dataset=text", "dataset.source=files", f"dataset.files=[{corpus}]", *TINY_MODEL,
         "logger=wandb", "train.iterations=4", "train.n_critic=2", "train.batch_size=8", "eval.every=2",
         "ckpt.every=2", "metrics.num_samples=32", f"hydra.run.dir={run_dir}"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300,
    )
    assert trained.returncode == 0, trained.stderr
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "complete"
    assert set(results["final"]) == {"step", "js1_32", "js2_32", "js3_32", "js4_32"}
    assert all(0 <= results["final"][f"js{n}_32"] <= 1 for n in (1, 2, 3, 4))
    evaluations = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evaluations] == [2, 4] and evaluations[-1]["js4_32"] == results["final"]["js4_32"]
    for name in ("step_000002.txt", "step_000004.txt", "final.txt"):
        samples = (run_dir / "samples" / name).read_text(encoding="utf-8").splitlines()
        assert len(samples) == 64 and all(len(line) == 32 for line in samples)
    (log,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    tables = [row for row in read_run(log)["history"] if "samples/_type" in row]
    assert [(t["samples/_type"], t["samples/nrows"]) for t in tables] == [("table-file", 64)] * 2
    (table,) = run_dir.glob(f"wandb/offline-run-*/files/{tables[-1]['samples/path']}")
    assert [row[0] for row in json.loads(table.read_text())["data"]] == samples
    # The metrics command scores the run's checkpoint as the run scored it.
    scored = subprocess.run([sys.executable, "-m", "wgan.metrics", str(run_dir), "--json"], cwd=ROOT,
                            env=environment, capture_output=True, text=True, timeout=300)
    assert scored.returncode == 0, scored.stderr
    report = json.loads(scored.stdout)
    assert report["values"] == {k: v for k, v in results["final"].items() if k != "step"}
    assert report["reference"] == f"text ({corpus}, 32 characters of {len(build_dataset(text_config(files=corpus)).vocab)})"


@pytest.mark.slow
def test_a_missing_corpus_stops_the_run_before_training_naming_where_and_how(tmp_path):
    root = tmp_path / "nothing-here"
    result = subprocess.run(
        [sys.executable, "run.py", "dataset=text", f"dataset.root={root}", "logger=none",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert result.returncode == 2
    folder = root / "1-billion-word-language-modeling-benchmark-r13output" / "training-monolingual.tokenized.shuffled"
    assert (f"invalid config: billion_word: no data in {folder}: set dataset.download=true (needs a network, 1.7 GB) "
            f"or extract {BILLION_WORD_URL} into {root}; for your own text use dataset.source=files "
            "dataset.files=[<file>]") in result.stdout + result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
    with pytest.raises(DatasetNotFound, match=f"dataset.files: {tmp_path / 'absent.txt'} does not exist"):
        build_dataset(text_config(files=tmp_path / "absent.txt"))
    with pytest.raises(ConfigError, match=r"dataset.files is empty: dataset.source=files reads the text files it lists"):
        build_dataset(text_config(files=""))
    (tmp_path / "two.txt").write_text("one line\n\nanother\n")
    with pytest.raises(ConfigError, match=r"dataset.heldout_fraction=0.1 of 2 lines leaves no held-out or no training"):
        build_dataset(text_config(files=tmp_path / "two.txt"))


@pytest.fixture
def benchmark_server(tmp_path):
    """A local HTTP server holding a two-file miniature of the Billion Word archive, as statmt.org lays it out."""
    import http.server
    import tarfile
    import threading
    from functools import partial

    folder = tmp_path / "archive" / BILLION_WORD_FOLDER / BILLION_WORD_TRAIN
    folder.mkdir(parents=True)
    (folder / "news.en-00001-of-00100").write_text("first file line\nsecond line\n")
    (folder / "news.en-00002-of-00100").write_text(" third , tokenized .\n")
    served = tmp_path / "served"
    served.mkdir()
    with tarfile.open(served / "benchmark.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "archive" / BILLION_WORD_FOLDER, arcname=BILLION_WORD_FOLDER)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_billion_word_is_downloaded_when_missing_and_read_in_file_order(tmp_path, benchmark_server, monkeypatch):
    monkeypatch.setattr("wgan.dataset.text.BILLION_WORD_URL", f"{benchmark_server}/benchmark.tar.gz")
    root = tmp_path / "billion_word"
    dataset = build_dataset(compose_config(["dataset=text", f"dataset.root={root}", "dataset.download=true",
                                            "dataset.heldout_fraction=0.34"]))
    # The benchmark's lines as they are (tokenized, leading space kept), padded with the official backtick.
    assert sorted(dataset.decode(torch.cat([dataset.lines, dataset.heldout]))) == sorted(
        line.ljust(32, PAD) for line in ["first file line", "second line", " third , tokenized ."])
    assert (root / BILLION_WORD_FOLDER / BILLION_WORD_TRAIN / "news.en-00002-of-00100").is_file()
    monkeypatch.setattr("wgan.dataset.text.BILLION_WORD_URL", f"{benchmark_server}/absent.tar.gz")
    with pytest.raises(DatasetNotFound, match=f"billion_word: the download of {benchmark_server}/absent.tar.gz into "
                                              f"{tmp_path / 'elsewhere'} failed .*404"):
        build_dataset(compose_config(["dataset=text", f"dataset.root={tmp_path / 'elsewhere'}", "dataset.download=true"]))
