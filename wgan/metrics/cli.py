"""`python -m wgan.metrics` (or `wgan-metrics`): score the generator of a run directory, or a folder
of images, against a dataset option or another folder, with the metrics code training uses.

    python -m wgan.metrics outputs/default/2026-11-23_10-00-00                 # the run's dataset and metrics
    python -m wgan.metrics samples/ --reference cifar10 dataset.root=/data/cifar10
    python -m wgan.metrics fakes/ --reference reals/ metrics.inception.weights=fid_helper

A run directory's generator is rebuilt from the project's config groups and the run's recorded
overrides (`wgan.run_config`), never from its files, and sampled as training samples it. Trailing
`key=value` arguments are Hydra overrides of the training config, applied after the run's
(`metrics=classifier`, `metrics.num_samples=50000`, `dataset.root=...`); the metrics default to
the run's own, else to those of the reference's dataset option.
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

import torch
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from wgan import metrics
from wgan.config import build_dataset, config_dir, validate
from wgan.dataset import ImageFolder, TextSource
from wgan.dataset.kind import Dataset
from wgan.device import resolve_device
from wgan.files import RunDirError, RunFiles, counted
from wgan.run_config import OVERRIDES, compose, rebuild
from wgan.sampling import evaluation, evaluation_count, load_generator, read_checkpoint
from wgan.schema import ConfigError
from wgan.signals import stoppable

log = logging.getLogger("wgan")

# The scorer's own settings, after the run's: it logs nowhere and runs where it is started.
SCORER = ["logger=none", "device=auto"]


def parse(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m wgan.metrics", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("generated", type=Path, help="a run directory (a checkpoint and Hydra's recorded "
                                                     "overrides), or a folder of images")
    parser.add_argument("--reference", help="a folder of images or a dataset option (cifar10, fashion_mnist, ...); "
                                            "default: the run directory's dataset")
    parser.add_argument("--best", action="store_true", help="score the run's best generator (checkpoints/best.pt, "
                                                            "kept by metrics.best) instead of its newest checkpoint")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. metrics.num_samples=50000")
    return parser.parse_intermixed_args(argv)


def is_run_dir(path: Path) -> bool:
    """Whether `path` holds a run (what `python run.py` writes first), checkpointed or not."""
    return RunFiles(path).config.is_file() or (path / OVERRIDES).is_file()


DATASET_OPTIONS = sorted(p.stem for p in (config_dir() / "dataset").glob("*.yaml"))


def reference_overrides(reference: Optional[str], generated: Path, run: Optional[DictConfig]) -> list[str]:
    """The overrides that make `--reference` the config's dataset (none: the run's own)."""
    if reference is None:
        if run is None:
            raise ConfigError(f"--reference: {generated} is a folder of images, so name a dataset option or a folder "
                              "to compare it with")
        return []
    if Path(reference).is_dir():  # decoded once into the cache directory, keyed by the folder's files
        overrides = ["dataset=imagefolder", f"dataset.root={reference}"]
        if run is not None:  # as the generator draws them
            overrides += [f"dataset.resolution={run.dataset.resolution}", f"dataset.channels={run.dataset.channels}"]
        return overrides
    if reference not in DATASET_OPTIONS:
        raise ConfigError(f"--reference {reference}: no such folder, and not a dataset option "
                          f"({', '.join(DATASET_OPTIONS)})")
    return [f"dataset={reference}"]


@dataclass
class Scoring:
    cfg: DictConfig  # the config the metrics run under: the run's (if any), the reference, the overrides
    run: Optional[DictConfig]  # the run's config, rebuilt, if `generated` is a run directory
    checkpoint: Optional[dict[str, Any]]  # and its newest readable checkpoint


def configure(args: argparse.Namespace) -> Scoring:
    if not args.generated.exists():
        raise ConfigError(f"{args.generated}: no such run directory or folder of images")
    if not args.generated.is_dir():
        raise ConfigError(f"{args.generated} is a file: name a run directory or a folder of images")
    run, recorded, checkpoint = None, [], None
    if args.best and not is_run_dir(args.generated):
        raise ConfigError(f"--best: {args.generated} is a folder of images, not a run directory")
    if is_run_dir(args.generated):
        files = RunFiles(args.generated)
        run, recorded = rebuild(files, SCORER)
        checkpoint = read_checkpoint(files, best=args.best)
        if args.reference is not None:  # the reference's dataset option replaces the run's
            recorded = [o.input_line for o in OverridesParser.create().parse_overrides(recorded)
                        if o.key_or_group.split(".")[0] != "dataset"]
    cfg = compose(recorded + reference_overrides(args.reference, args.generated, run) + SCORER + list(args.overrides))
    validate(cfg)
    return Scoring(cfg, run, checkpoint)


def generated_images(args: argparse.Namespace, scoring: Scoring,
                     dataset: Dataset) -> tuple[metrics.EvalContext, Iterable[torch.Tensor], str]:
    """What is scored, as the metrics take it (a context and batches of samples), and a description of it."""
    cfg = scoring.cfg
    if scoring.run is None:
        folder = ImageFolder("generated", str(args.generated), cfg.dataset.resolution, cfg.dataset.channels, cache=False)
        n = len(folder.images)
        batches = stoppable(folder.images.split(cfg.metrics.batch_size), f"scoring {n} images")
        return metrics.EvalContext(n, None, dataset, cfg), batches, f"{counted(n, 'image')} in {args.generated}"
    run_dataset = dataset if args.reference is None else build_dataset(scoring.run)
    generator = load_generator(scoring.run, run_dataset.shape, scoring.checkpoint, resolve_device(cfg.device))
    step = scoring.checkpoint["step"]
    what = f"{counted(evaluation_count(cfg, step), 'sample')} of the generator in {args.generated} (iteration {step})"
    log.info("sampling %s", what)
    return *evaluation(generator, dataset, cfg, step), what


def score(args: argparse.Namespace) -> dict[str, Any]:
    scoring = configure(args)
    cfg = scoring.cfg
    dataset = build_dataset(cfg)
    context, samples, generated = generated_images(args, scoring, dataset)
    names = list(cfg.metrics.names)
    log.info("scoring against %s with %s", cfg.dataset.name, ", ".join(names) or "no metrics")
    with torch.no_grad():
        values = metrics.compute(names, context, samples)
    # Where the reference was read: the root, or the files of a text corpus of one's own.
    where = ", ".join(cfg.dataset.files) if cfg.dataset.get("source") is TextSource.files else cfg.dataset.get("root")
    root = f"{where}, " if where else ""
    shape = dataset.kind.describe(dataset.shape)
    return {
        "values": values,
        "unavailable": metrics.unavailable(cfg),
        "generated": generated,
        "reference": f"{cfg.dataset.name} ({root}{shape})",
        "metrics": OmegaConf.to_container(cfg.metrics, resolve=True),
    }


def print_table(report: dict[str, Any]) -> None:
    print(f"generated: {report['generated']}")
    print(f"reference: {report['reference']}")
    settings = report["metrics"]
    if "inception" in settings["names"]:
        count = settings["inception"]["reference_samples"]
        print(f"network:   Inception ({settings['inception']['weights']}), reference statistics over "
              f"{'every image' if count is None else f'{count:,} images'}")
    width = max([len(k) for k in report["values"]] + [12])
    for key, value in report["values"].items():
        print(f"  {key:<{width}} {value:.6g}")
    for key, reason in report["unavailable"].items():
        print(f"  {key:<{width}} unavailable: {reason}")


def main(argv: Optional[list[str]] = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse(argv)
    try:
        report = score(args)
    except (ConfigError, RunDirError) as error:  # RunDirError: a run directory without a readable checkpoint
        log.error("%s", error)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0
