"""Peak memory of an evaluation against its sample count: the Inception Score and FID of 64x64
RGB images, scored as they are generated (`wgan.metrics.compute`) or, with `--collect`, after
collecting every image in one tensor first, as evaluations did before they streamed.

    python benchmarks/eval_memory.py                 # about a minute on 2 CPU cores
    python benchmarks/eval_memory.py --collect

The network is a stand-in where it is not the point (a fixed random projection of pooled pixels
to Inception's 2,048 features and 1,008 logits), so the figures are the evaluation's own: each count
runs in a process of its own, and the figure is how far its peak resident set (ru_maxrss) rose
during the evaluation. KID is left out: it keeps the features its random subsets draw, up to
kid_subsets x kid_subset_size of them (docs/configuration.md, `metrics`); figures in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wgan import metrics  # noqa: E402
from wgan.config import build, compose_config  # noqa: E402
from wgan.metrics import inception  # noqa: E402

COUNTS = (2_000, 20_000)
BATCH = 100


class Projection(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        rng = torch.Generator().manual_seed(0)
        self.to_features = torch.randn(3 * 8 * 8, inception.FEATURES, generator=rng)
        self.to_logits = torch.randn(inception.FEATURES, inception.CLASSES, generator=rng) / 100

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.relu(torch.nn.functional.adaptive_avg_pool2d(images.float() / 255, 8).flatten(1) @ self.to_features)
        return features, features @ self.to_logits


def images(count: int):
    """`count` random 64x64 RGB images in batches, each made when it is asked for, as a generator's."""
    rng = torch.Generator().manual_seed(1)
    for size in [BATCH] * (count // BATCH):
        yield torch.randint(0, 256, (size, 3, 64, 64), dtype=torch.uint8, generator=rng)


def megabytes() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def measure(count: int, collect: bool) -> None:
    network = inception.Network(Projection(), "projection", True, torch.device("cpu"))
    inception.load_network = lambda *args: network
    with tempfile.TemporaryDirectory() as cache:
        cfg = compose_config(["dataset=synthetic", "dataset.resolution=64", "metrics=inception",
                              "metrics.inception.scores=[is,fid]", "metrics.inception.reference_samples=500",
                              f"metrics.cache_dir={cache}"])
        context = metrics.EvalContext(count, None, build(cfg.dataset), cfg)
        inception.reference(context, network, cfg.metrics.inception, BATCH)  # cached: not part of the figure
        batches = images(count)
        before = megabytes()
        if collect:
            batches = torch.cat(list(batches)).split(BATCH)
        values = metrics.compute(["inception"], context, batches)
    print(f"{count} {megabytes() - before:.0f} {values[metrics.protocol_name('fid', count)]:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collect", action="store_true", help="collect every image first, as before streaming")
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)  # one measurement, in this process
    args = parser.parse_args()
    if args.count:
        return measure(args.count, args.collect)
    print(f"| samples | peak memory growth ({'collected first' if args.collect else 'streamed'}) |\n|---|---|")
    for count in COUNTS:
        done = subprocess.run([sys.executable, __file__, "--count", str(count), *(["--collect"] if args.collect else [])],
                              capture_output=True, text=True, check=True)
        _, grown, _ = done.stdout.split()
        print(f"| {count:,} | {grown} MB |")


if __name__ == "__main__":
    main()
