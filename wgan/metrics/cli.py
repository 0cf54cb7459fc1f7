"""`python -m wgan.metrics` (or `wgan-metrics`): score a folder of images, or the generator of a run
directory, against a dataset option or another folder, with the metrics code training uses.

    python -m wgan.metrics outputs/default/2026-11-23_10-00-00                 # the run's dataset
    python -m wgan.metrics samples/ --reference cifar10 dataset.root=/data/cifar10
    python -m wgan.metrics fakes/ --reference reals/ metrics.inception.weights=fid_helper

Trailing `key=value` arguments are Hydra overrides of the training config (`metrics=classifier`,
`metrics.num_samples=50000`, `metrics.inception.weights=...`, `dataset.root=...`); the metrics
default to `metrics=inception`.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf

from wgan import metrics
from wgan.config import build_dataset, compose_config, validate
from wgan.dataset import ImageFolder
from wgan.files import RunDirError, RunFiles
from wgan.schema import ConfigError

log = logging.getLogger("wgan")


def parse(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m wgan.metrics", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("generated", type=Path, help="a folder of images, or a run directory (config.yaml + checkpoint)")
    parser.add_argument("--reference", help="a folder of images or a dataset option (cifar10, fashion_mnist, ...); "
                                            "default: the run directory's dataset")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. metrics.num_samples=50000")
    return parser.parse_intermixed_args(argv)


def is_run_dir(path: Path) -> bool:
    return (path / "config.yaml").is_file() and RunFiles(path).checkpoint.is_file()


def configure(args: argparse.Namespace) -> tuple[DictConfig, Optional[DictConfig]]:
    """(the scoring config, the run's config if `generated` is a run directory)."""
    run_cfg = OmegaConf.load(args.generated / "config.yaml") if is_run_dir(args.generated) else None
    overrides = ["logger=none"]
    if args.reference is None:
        if run_cfg is None:
            raise ConfigError(f"--reference: {args.generated} is a folder of images, so name a dataset or folder to "
                              "compare it with")
    elif Path(args.reference).is_dir():
        overrides += ["dataset=imagefolder", f"dataset.root={args.reference}"]
        if run_cfg is not None:
            overrides += [f"dataset.resolution={run_cfg.dataset.resolution}", f"dataset.channels={run_cfg.dataset.channels}"]
    else:
        overrides.append(f"dataset={args.reference}")
    if not any(o.startswith("metrics=") for o in args.overrides):
        overrides.append("metrics=inception")
    cfg = compose_config(overrides + list(args.overrides))
    if args.reference is None:
        cfg.dataset = run_cfg.dataset
    validate(cfg)
    return cfg, run_cfg


def generated_images(args: argparse.Namespace, cfg: DictConfig, run_cfg: Optional[DictConfig]) -> tuple[torch.Tensor, str]:
    """uint8 images (N, C, H, W) at the reference's resolution, and a description of them."""
    if run_cfg is None:
        folder = ImageFolder("generated", str(args.generated), cfg.dataset.resolution, cfg.dataset.channels, cache=False)
        return folder.images, f"{len(folder.images):,} images in {args.generated}"
    from wgan.train import Trainer  # the training code samples, so scores here equal those of training

    run_cfg = OmegaConf.merge(run_cfg, {"metrics": cfg.metrics, "device": cfg.device})
    files = RunFiles(args.generated)
    trainer = Trainer(run_cfg, files)
    state = files.load_checkpoint()
    trainer.generator.load_state_dict(state["generator"])
    trainer.step = state["step"]
    n = cfg.metrics.num_samples
    return trainer.generate(n, trainer.evaluation_rng()), f"{n:,} samples of the generator in {args.generated} " \
                                                          f"(iteration {state['step']})"


def score(args: argparse.Namespace) -> dict[str, Any]:
    cfg, run_cfg = configure(args)
    fake, generated = generated_images(args, cfg, run_cfg)
    dataset = build_dataset(cfg)
    values = metrics.compute(list(cfg.metrics.names), metrics.EvalContext(fake, None, dataset, cfg))
    return {
        "values": values,
        "unavailable": metrics.unavailable(cfg),
        "generated": generated,
        "reference": f"{cfg.dataset.name} ({cfg.dataset.get('root', 'generated')}, "
                     f"{cfg.dataset.resolution}x{cfg.dataset.resolution}x{cfg.dataset.channels})",
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
