"""Benchmarks of this project against plain baselines, printed as a Markdown table.

    make bench                      # every row, about 7 minutes on 2 CPU cores
    make bench ARGS="--quick"       # fewer repetitions
    make bench ARGS="--only step --device cuda"

Every figure is the median of several repetitions run interleaved (A, B, A, B, ...), so that a
machine that slows down or speeds up during the run affects both sides of a comparison alike;
every ratio is the median of the ratios of neighbouring A/B pairs of the same run. Rows:

- step: time of one generator iteration (n_critic critic steps + 1 generator step, as
  `Trainer.iteration()`), against `ReferenceLoop`, the loop most public WGAN-GP code writes,
  on copies of the same networks with the same initial weights.
- peak: the share of this machine's matrix-multiply throughput (a large float32 `torch.mm`)
  that the toy critic step reaches, from an analytic FLOP count (`critic_step_flops`).
- inception: Inception feature extraction of this project (the offline TorchScript network) against
  torch-fidelity's own extraction loop, at the same batch size, on the same uint8 images.
- cache: reference statistics of a small dataset computed with the cache empty and read from it warm.
- study: jobs per hour of a tiny robustness study with the joblib launcher against the basic one.
- startup: seconds from launching `python run.py` to the start of the first training iteration.
- busy: wall time of a short default run (`python run.py`, all cores) with the project's OpenMP
  wait policy (passive, wgan/__init__.py) against OpenMP's spinning default, on the idle machine and
  with one other CPU-bound process running: the case of a shared laptop or workstation; and the
  default's slowdown on that busy machine against the idle one, which must stay within a fair share
  of the cores left (cores / (cores - 1): 2x on 2 cores), not collapse.
"""
from __future__ import annotations

import argparse
import copy
import io
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, Optional

import torch

from wgan.arch.layers import PiecewiseLinear
from wgan.config import build, compose_config, validate
from wgan.files import RunFiles
from wgan.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
CIFAR_JPEG = ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz"
ROWS = ("step", "peak", "inception", "cache", "study", "startup", "busy")


@dataclass
class Settings:
    reps: int  # repetitions of every comparison (interleaved)
    toy_reps: int  # of the toy step rows (cheap, and noisier)
    toy_iterations: int  # generator iterations per repetition, toy MLP
    image_iterations: int  # generator iterations per repetition, DCGAN
    critic_steps: int  # toy critic steps per repetition (peak row)
    images: int  # images per Inception pass
    inception_batch: int
    inception_reps: int
    reference_images: int  # dataset size for the reference-statistics cache
    study_reps: int
    startup_reps: int
    busy_iterations: int  # of the default run in the busy rows
    busy_reps: int


FULL = Settings(reps=5, toy_reps=9, toy_iterations=6, image_iterations=2, critic_steps=20, images=192,
                inception_batch=32, inception_reps=3, reference_images=32, study_reps=3, startup_reps=3,
                busy_iterations=60, busy_reps=3)
QUICK = Settings(reps=2, toy_reps=2, toy_iterations=2, image_iterations=1, critic_steps=5, images=16,
                 inception_batch=8, inception_reps=2, reference_images=8, study_reps=1, startup_reps=1,
                 busy_iterations=10, busy_reps=1)


@dataclass
class Row:
    measure: str
    ours: str
    baseline: str
    figure: str
    target: str
    verdict: str


NOTES: list[str] = []


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- timing ------------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(variants: dict[str, Callable[[], object]], reps: int, device: torch.device) -> dict[str, list[float]]:
    """Seconds of each variant's call, `reps` times, in the order A, B, A, B, ..."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(reps):
        for name, fn in variants.items():
            synchronize(device)
            started = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - started)
    return times


def median_ratio(numerators: list[float], denominators: list[float]) -> float:
    """The median of the ratios of the pairs measured next to each other."""
    return statistics.median(a / b for a, b in zip(numerators, denominators))


def spread(values: list[float]) -> str:
    return f"{min(values):.3g}-{max(values):.3g}"


def verdict(value: float, target: float, higher_is_better: bool, unit: str = "") -> str:
    """'met', or 'missed by' the distance to the target and the factor that would close it."""
    if (value >= target) if higher_is_better else (value <= target):
        return "met"
    factor = target / value if higher_is_better else value / target
    return f"missed by {abs(target - value):.2g}{unit} (needs {factor:.3f}x)"


# --- 1. training step: this project against the reference loop ---------------------------------


def plain_optimizer(settings, params) -> torch.optim.Optimizer:
    """The optimizer the config names, built with torch alone (no Hydra)."""
    if settings._target_ == "torch.optim.Adam":
        return torch.optim.Adam(params, lr=settings.lr, betas=tuple(settings.betas), weight_decay=settings.weight_decay)
    if settings._target_ == "torch.optim.RMSprop":
        return torch.optim.RMSprop(params, lr=settings.lr, alpha=settings.alpha, eps=settings.eps,
                                   weight_decay=settings.weight_decay)
    if settings._target_ == "wgan.optimizer.tf1_rmsprop":  # TF1's RMSProp: timm's, as the project builds it
        from timm.optim import RMSpropTF
        return RMSpropTF(params, lr=settings.lr, alpha=settings.alpha, eps=settings.eps, weight_decay=settings.weight_decay)
    raise ValueError(f"no plain version of {settings._target_}")


def with_torch_activations(net: torch.nn.Module) -> torch.nn.Module:
    """`net` with every PiecewiseLinear replaced by the nn.ReLU or nn.LeakyReLU it equals."""
    for name, child in net.named_children():
        if isinstance(child, PiecewiseLinear):
            setattr(net, name, torch.nn.LeakyReLU(child.slope) if child.slope else torch.nn.ReLU())
        else:
            with_torch_activations(child)
    return net


class ReferenceLoop:
    """WGAN-GP and weight-clipped WGAN as most public code writes them (the PyTorch ports of the
    official gan_toy.py / gan_cifar.py): separate critic forwards for real, fake and interpolated
    samples, the penalty through `torch.autograd.grad(create_graph=True)`, critic parameters
    frozen by hand for the generator step. It runs on deep copies of a Trainer's networks with
    torch's own nn.ReLU and nn.LeakyReLU in place of the project's `PiecewiseLinear`, with the
    Trainer's data, batch size, n_critic, penalty weight or clip bound, and optimizer settings
    (a learning-rate schedule is left out: the first iteration runs at the configured rate)."""

    def __init__(self, trainer: Trainer) -> None:
        cfg = trainer.cfg
        if cfg.loss.name != "wgan" or cfg.lipschitz.name not in ("gp", "clip") or cfg.lipschitz.get("one_sided"):
            raise ValueError("the reference loop is WGAN-GP (two-sided) or WGAN with weight clipping")
        self.device, self.data = trainer.device, trainer.parts.dataset
        self.G, self.D = (with_torch_activations(copy.deepcopy(net)) for net in (trainer.parts.generator, trainer.parts.critic))
        self.optG = plain_optimizer(cfg.optimizer.generator, self.G.parameters())
        self.optD = plain_optimizer(cfg.optimizer.critic, self.D.parameters())
        self.batch_size, self.n_critic = cfg.train.batch_size, cfg.train.n_critic
        self.lam = cfg.lipschitz.lam if cfg.lipschitz.name == "gp" else None
        self.clip = cfg.lipschitz.bound if cfg.lipschitz.name == "clip" else None

    def gradient_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        alpha = torch.rand(real.size(0), *[1] * (real.dim() - 1), device=self.device)
        interpolates = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
        disc_interpolates = self.D(interpolates)
        gradients = torch.autograd.grad(outputs=disc_interpolates, inputs=interpolates,
                                        grad_outputs=torch.ones_like(disc_interpolates),
                                        create_graph=True, retain_graph=True, only_inputs=True)[0]
        gradients = gradients.view(gradients.size(0), -1)
        return self.lam * ((gradients.norm(2, dim=1) - 1) ** 2).mean()

    def iteration(self) -> torch.Tensor:
        """n_critic critic steps and one generator step; returns the last critic loss."""
        for p in self.D.parameters():
            p.requires_grad = True
        for _ in range(self.n_critic):
            real = self.data.sample(self.batch_size, self.device)
            noise = torch.randn(self.batch_size, self.G.noise_dim, device=self.device)
            with torch.no_grad():
                fake = self.G(noise)
            D_real = self.D(real).mean()
            D_fake = self.D(fake).mean()
            D_cost = D_fake - D_real
            if self.lam is not None:
                D_cost = D_cost + self.gradient_penalty(real, fake)
            self.optD.zero_grad()
            D_cost.backward()
            self.optD.step()
            if self.clip is not None:
                for p in self.D.parameters():
                    p.data.clamp_(-self.clip, self.clip)
        for p in self.D.parameters():
            p.requires_grad = False
        noise = torch.randn(self.batch_size, self.G.noise_dim, device=self.device)
        G_cost = -self.D(self.G(noise)).mean()
        self.optG.zero_grad()
        G_cost.backward()
        self.optG.step()
        return D_cost.detach()


EXTRA: list[str] = []  # --set: overrides for the project's side of the step and peak rows


def make_trainer(overrides: list[str], device: str, run_dir: Path) -> Trainer:
    cfg = compose_config(["logger=none", f"device={device}", *overrides, *EXTRA])
    validate(cfg)
    return Trainer(cfg, RunFiles(run_dir))


def one_iteration_each(trainer: Trainer, reference: ReferenceLoop, seed: int = 1) -> tuple[float, float]:
    """The critic loss of one iteration of each, from the same random state."""
    torch.manual_seed(seed)
    ours = float(trainer.iteration()["critic_loss"])
    torch.manual_seed(seed)
    theirs = float(reference.iteration())
    return ours, theirs


TOY = ["arch=mlp", "arch.width=512", "train.batch_size=256"]
DCGAN = ["dataset=synthetic", "dataset.resolution=32", "arch=dcgan", "train.batch_size=64"]
STEP_CASES = {
    "toy MLP 512, batch 256": TOY,
    "DCGAN 32x32, batch 64": DCGAN,
}
METHODS = {"WGAN-GP": "method=wgan_gp", "WGAN clip": "method=wgan_clip"}


def step_rows(settings: Settings, device: str, tmp: Path) -> list[Row]:
    rows = []
    for case, overrides in STEP_CASES.items():
        image = "dataset=synthetic" in overrides
        iterations = settings.image_iterations if image else settings.toy_iterations
        reps = settings.reps if image else settings.toy_reps
        for method, choice in METHODS.items():
            trainer = make_trainer([*overrides, choice], device, tmp / "step")
            reference = ReferenceLoop(trainer)
            ours, theirs = one_iteration_each(trainer, reference)  # doubles as the warm-up
            NOTES.append(f"step, {case}, {method}: critic loss after one iteration from the same weights and "
                         f"random draws: ours {ours:.6g}, reference {theirs:.6g}")

            def run_ours(trainer=trainer, n=iterations):
                for _ in range(n):
                    trainer.iteration()

            def run_reference(reference=reference, n=iterations):
                for _ in range(n):
                    reference.iteration()

            times = interleaved({"ours": run_ours, "reference": run_reference}, reps, trainer.device)
            ratios = [a / b for a, b in zip(times["reference"], times["ours"])]
            ratio = statistics.median(ratios)
            ms = {k: 1000 * statistics.median(v) / iterations for k, v in times.items()}
            NOTES.append(f"step, {case}, {method}: n_critic={trainer.cfg.train.n_critic}, {iterations} iterations x "
                         f"{reps} reps; reference/ours ratios {spread(ratios)}")
            outcome = verdict(ratio, 1.0, True, "x")
            if outcome != "met" and max(ratios) >= 1.0:
                outcome += f"; within noise (pairs {spread(ratios)})"
            rows.append(Row(f"1. step time, {case}, {method}", f"{ms['ours']:.1f} ms/it",
                            f"{ms['reference']:.1f} ms/it (reference loop)", f"{ratio:.2f}x", ">= 1.00x", outcome))
            progress(f"step {case} {method}: ours {ms['ours']:.1f} ms, reference {ms['reference']:.1f} ms")
    return rows


# --- 2. the toy critic step against the matrix-multiply peak -------------------------------------


def linear_shapes(module: torch.nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, torch.nn.Linear)]


def critic_step_flops(critic: torch.nn.Module, generator: torch.nn.Module, batch: int) -> int:
    """Model FLOPs of one WGAN-GP critic step with ReLU MLPs (`Trainer.critic_step`), counting
    matrix multiplies only (2 FLOPs a multiply-add; biases, ReLUs, norms and the optimizer are
    O(batch x width), not O(batch x width^2)). With P = the sum over the critic's linear layers of
    in x out, `first` and `last` those of its first and last layer, Pg the generator's sum, and
    B the batch:

      generator forward for the fake batch (no gradient): 2B Pg
      critic on real and on fake: forward 2 x 2BP; backward to the weights 2 x 2BP; backward to
        the activations 2 x 2B(P - first) (the data needs no gradient)
      critic on the interpolates: forward 2BP; input gradient (create_graph) 2BP, every layer
      double backward of the penalty: each `g_in = g_out W` node of the input gradient gives a
        weight gradient (2BP) and a gradient to g_out (2B(P - last): the last layer's g_out is the
        constant ones)

      total = B (20 P - 4 first - 2 last + 2 Pg)

    Exactly what torch executes (`executed_flops`, checked in the notes and tests): the backward
    of the project's ReLUs treats their input as a constant (`PiecewiseLinear`), so nothing flows
    back from them through the interpolates' forward graph. With nn.ReLU, as in the
    reference loop, autograd multiplies ReLU's zero second derivative through every layer but the
    last: 4B(P - last) more executed FLOPs, all of them zeros."""
    shapes = linear_shapes(critic)
    p, pg = sum(i * o for i, o in shapes), sum(i * o for i, o in linear_shapes(generator))
    return batch * (20 * p - 4 * math.prod(shapes[0]) - 2 * math.prod(shapes[-1]) + 2 * pg)


def executed_flops(fn: Callable[[], object]) -> int:
    """The matrix-multiply FLOPs `fn` executes, by torch.utils.flop_counter's formulas (its own
    FlopCounterMode tracks modules with hooks that autograd.grad rejects)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    class Counter(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.overloadpacket in flop_registry:
                self.total += flop_registry[func.overloadpacket](*args, **(kwargs or {}), out_val=out)
            return out

    with Counter() as counter:
        fn()
    return counter.total


def peak_rows(settings: Settings, device: str, tmp: Path) -> list[Row]:
    trainer = make_trainer([*TOY, "method=wgan_gp"], device, tmp / "peak")
    n = 2048
    a, b = torch.randn(n, n, device=trainer.device), torch.randn(n, n, device=trainer.device)
    out = torch.empty(n, n, device=trainer.device)
    mm_count = 4 if trainer.device.type == "cpu" else 50

    def matmul():
        for _ in range(mm_count):
            torch.mm(a, b, out=out)

    def critic_steps():
        for _ in range(settings.critic_steps):
            trainer.critic_step()

    matmul()
    trainer.critic_step()  # warm-up
    model = critic_step_flops(trainer.parts.critic, trainer.parts.generator, trainer.cfg.train.batch_size)
    executed = executed_flops(trainer.critic_step)
    times = interleaved({"mm": matmul, "critic": critic_steps}, settings.toy_reps, trainer.device)
    peak = [2 * n**3 * mm_count / t for t in times["mm"]]
    achieved = [model * settings.critic_steps / t for t in times["critic"]]
    fraction = median_ratio(achieved, peak)
    NOTES.append(f"peak: toy critic step {model / 1e9:.3f} GFLOP by the analytic count, {executed / 1e9:.3f} GFLOP "
                 f"executed (torch.utils.flop_counter: {'matches' if executed == model else 'DOES NOT MATCH'}); "
                 f"{1000 * statistics.median(times['critic']) / settings.critic_steps:.1f} ms a critic "
                 f"step; peak = {mm_count} x torch.mm {n}x{n} float32, {torch.get_num_threads()} threads")
    progress(f"peak: {statistics.median(peak) / 1e9:.1f} GFLOP/s, critic step {statistics.median(achieved) / 1e9:.1f}")
    return [Row("2. toy critic step (WGAN-GP, MLP 512, batch 256) vs matmul peak",
                f"{statistics.median(achieved) / 1e9:.1f} GFLOP/s", f"{statistics.median(peak) / 1e9:.1f} GFLOP/s "
                f"(torch.mm {n}x{n})", f"{fraction:.1%}", ">= 60%", verdict(100 * fraction, 60, True, " points"))]


# --- 3. Inception features and the reference-statistics cache -----------------------------------


def sample_images(count: int) -> tuple[torch.Tensor, str]:
    """`count` uint8 32x32 images: the first CIFAR-10 JPEGs of the shared copy, else random ones."""
    if CIFAR_JPEG.is_file():
        from PIL import Image

        images = []
        with tarfile.open(CIFAR_JPEG, "r|gz") as archive:
            for member in archive:
                if member.isfile() and member.name.endswith(".jpg"):
                    image = Image.open(io.BytesIO(archive.extractfile(member).read())).convert("RGB")
                    images.append(torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(32, 32, 3))
                    if len(images) == count:
                        return torch.stack(images).permute(0, 3, 1, 2).contiguous(), "CIFAR-10 JPEGs"
    generator = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator), "random images"


def torch_fidelity_extractor(tmp: Path, device: torch.device):
    """torch-fidelity's own FeatureExtractorInceptionV3, unfolded, given the TorchScript file's
    weights in torch-fidelity's format (offline; its own file would be downloaded)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from wgan.metrics import inception

    script = inception.load_torchscript(inception.weights_file("fid_helper"))
    path = tmp / "inception-torch-fidelity-format.pth"
    torch.save(inception.torch_fidelity_state(script.state_dict()), path)
    return FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], str(path)).to(device)


class ImageList(torch.utils.data.Dataset):
    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def inception_rows(settings: Settings, device: str, tmp: Path) -> list[Row]:
    from torch_fidelity.utils import get_featuresdict_from_dataset

    from wgan.device import resolve_device
    from wgan.metrics import inception

    torch_device = resolve_device(device)
    images, source = sample_images(settings.images)
    batch = settings.inception_batch
    network = inception.load_network("fid_helper", torch_device)
    extractor = torch_fidelity_extractor(tmp, torch_device)
    dataset = ImageList(images)

    def ours():
        return torch.cat([network(part)[0].cpu() for part in images.split(batch)])

    def fidelity():  # torch-fidelity's loop over a Dataset (save_cpu_ram: no DataLoader worker processes)
        cuda = torch_device.type == "cuda"
        return get_featuresdict_from_dataset(dataset, extractor, batch, cuda, True, False)["2048"]

    difference = float((ours() - fidelity()).abs().max())  # also the warm-up
    times = interleaved({"ours": ours, "torch-fidelity": fidelity}, settings.inception_reps, torch_device)
    rate = {k: len(images) / statistics.median(v) for k, v in times.items()}
    ratio = median_ratio(times["torch-fidelity"], times["ours"])
    NOTES.append(f"inception: {len(images)} {source} per pass, batch {batch}, {settings.inception_reps} reps; "
                 f"the two paths' pool3 features differ by at most {difference:.2g} (same network and weights: "
                 "fid_helper's, in torch-fidelity's format, since its own file needs a download; ours has its "
                 "batch norms folded into the convolutions)")
    progress(f"inception: ours {rate['ours']:.2f} img/s, torch-fidelity {rate['torch-fidelity']:.2f} img/s")
    return [Row(f"3. Inception pool3 features, 32x32 uint8, batch {batch}",
                f"{rate['ours']:.2f} img/s (batch norms folded)",
                f"{rate['torch-fidelity']:.2f} img/s (torch-fidelity's extractor and loop)", f"{ratio:.2f}x",
                ">= 1.00x", verdict(ratio, 1.0, True, "x"))]


def cache_rows(settings: Settings, device: str, tmp: Path) -> list[Row]:
    from wgan.device import resolve_device
    from wgan.metrics import EvalContext, inception

    def context(cache_dir: Path) -> EvalContext:
        cfg = compose_config(["dataset=synthetic", "metrics=inception", "metrics.inception.weights=fid_helper",
                              f"metrics.cache_dir={cache_dir}",
                              f"metrics.inception.reference_samples={settings.reference_images}",
                              "logger=none", f"device={device}"])
        return EvalContext(0, None, build(cfg.dataset), cfg)

    warm = context(tmp / "cache-warm")
    network = inception.load_network("fid_helper", resolve_device(device))
    cold_contexts = iter([context(tmp / f"cache-cold-{i}") for i in range(settings.reps)])
    settings_node, batch = warm.cfg.metrics.inception, warm.cfg.metrics.batch_size
    inception.reference(warm, network, settings_node, batch)  # fills the warm cache
    times = interleaved({
        "cold": lambda: inception.reference(next(cold_contexts), network, settings_node, batch),
        "warm": lambda: inception.reference(warm, network, settings_node, batch),
    }, settings.reps, network.device)
    cold, hot = statistics.median(times["cold"]), statistics.median(times["warm"])
    speedup = median_ratio(times["cold"], times["warm"])
    progress(f"cache: cold {cold:.2f} s, warm {hot * 1000:.1f} ms")
    return [Row(f"3. reference statistics of {settings.reference_images} synthetic images, cache warm vs empty",
                f"{hot * 1000:.1f} ms (warm)", f"{cold:.2f} s (empty cache)", f"{speedup:.0f}x", ">= 10x (set here)",
                verdict(speedup, 10, True, "x"))]


# --- 4. study throughput: joblib against the basic launcher --------------------------------------


STUDY = ["-m", "sweeps=robustness_toy", "arch.count=2", "train.iterations=60", "eval.every=60", "ckpt.every=60",
         "logger=none"]


def run_study(launcher: str, sweep_dir: Path, device: str) -> int:
    """Run the tiny study; the number of jobs that completed."""
    extra = ["hydra/launcher=basic"] if launcher == "basic" else []
    command = [sys.executable, "run.py", *STUDY, f"study=bench_{launcher}", f"hydra.sweep.dir={sweep_dir}",
               f"device={device}", *extra]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return sum(RunFiles(d).read_results().get("status") == "complete"
               for d in sweep_dir.iterdir() if (d / "results.json").exists())


def study_rows(settings: Settings, device: str, tmp: Path) -> list[Row]:
    jobs: dict[str, int] = {}
    runs = iter(range(10**6))

    def variant(launcher: str) -> Callable[[], None]:
        def go():
            jobs[launcher] = run_study(launcher, tmp / f"study-{launcher}-{next(runs)}", device)
        return go

    launchers = {"joblib": variant("joblib"), "basic": variant("basic")}
    times = interleaved(launchers, settings.study_reps, torch.device("cpu"))
    if jobs["joblib"] != jobs["basic"] or not jobs["joblib"]:
        raise RuntimeError(f"the studies completed different job counts: {jobs}")
    per_hour = {k: jobs[k] * 3600 / statistics.median(v) for k, v in times.items()}
    ratio = median_ratio(times["basic"], times["joblib"])
    NOTES.append(f"study: `python run.py {' '.join(STUDY)}` ({jobs['joblib']} jobs), {settings.study_reps} reps; "
                 f"wall seconds joblib {spread(times['joblib'])}, basic {spread(times['basic'])}")
    progress(f"study: joblib {per_hour['joblib']:.0f} jobs/h, basic {per_hour['basic']:.0f} jobs/h")
    return [Row(f"4. study throughput, {jobs['joblib']} tiny robustness_toy jobs",
                f"{per_hour['joblib']:.0f} jobs/h (joblib, {os.cpu_count()} workers)",
                f"{per_hour['basic']:.0f} jobs/h (basic launcher)", f"{ratio:.2f}x", ">= 1.50x",
                verdict(ratio, 1.5, True, "x"))]


# --- 5. start-up ---------------------------------------------------------------------------------


FIRST_ITERATION = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]\[wgan\.train\]\[INFO\] - iter 1/.*?([\d.]+) it/s"
)


def startup_seconds(extra: list[str], run_dir: Path, device: str) -> float:
    """Seconds from launching `python run.py` to the start of its first iteration: the time stamp
    of the log line that iteration 1 writes (train.log_every=1), less that iteration's own time
    (1 / the it/s it reports). The run is stopped (SIGTERM, which it handles) once the line is out."""
    command = [sys.executable, "run.py", "train.log_every=1", f"hydra.run.dir={run_dir}", f"device={device}", *extra]
    launched = time.time()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    seen = []
    try:
        for line in process.stdout:
            seen.append(line)
            match = FIRST_ITERATION.match(line)
            if match:
                process.send_signal(signal.SIGTERM)
                logged = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
                process.communicate(timeout=120)
                return logged - launched - 1 / float(match.group(2))
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    raise RuntimeError(f"{' '.join(command)} logged no first iteration:\n{''.join(seen[-30:])}")


def startup_rows(settings: Settings, device: str, tmp: Path) -> list[Row]:
    variants = {"default (W&B offline)": [], "logger=none": ["logger=none"]}
    runs = iter(range(10**6))
    seconds: dict[str, list[float]] = {k: [] for k in variants}

    def variant(name: str) -> Callable[[], None]:
        return lambda: seconds[name].append(startup_seconds(variants[name], tmp / f"startup-{next(runs)}", device))

    interleaved({k: variant(k) for k in variants}, settings.startup_reps, torch.device("cpu"))
    rows = []
    for name, values in seconds.items():
        value = statistics.median(values)
        NOTES.append(f"startup, {name}: {settings.startup_reps} reps, {spread(values)} s")
        rows.append(Row(f"5. start-up, `python run.py` to iteration 1, {name}", f"{value:.2f} s", "",
                        f"{value:.2f} s", "<= 5 s", verdict(value, 5, False, " s")))
    progress("startup: " + ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in seconds.items()))
    return rows


# --- 6. a busy machine ---------------------------------------------------------------------------


def default_run_seconds(wait_policy: str, iterations: int, run_dir: Path, device: str) -> float:
    """Wall seconds of `python run.py` (the default run, shortened) under an OpenMP wait policy."""
    command = [sys.executable, "run.py", f"train.iterations={iterations}", f"eval.every={iterations}",
               f"ckpt.every={iterations}", "logger=none", f"hydra.run.dir={run_dir}", f"device={device}"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OMP_WAIT_POLICY": wait_policy})
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def busy_rows(settings: Settings, device: str, tmp: Path) -> list[Row]:
    runs = iter(range(10**6))
    policies = {"passive (ours)": "PASSIVE", "spinning (OpenMP default)": "ACTIVE"}
    rows, passive = [], {}
    for machine_state in ("idle", "busy"):
        seconds: dict[str, list[float]] = {k: [] for k in policies}

        def variant(name: str) -> Callable[[], None]:
            return lambda: seconds[name].append(default_run_seconds(
                policies[name], settings.busy_iterations, tmp / f"busy-{next(runs)}", device))

        load = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if machine_state == "busy" else None
        try:
            interleaved({k: variant(k) for k in policies}, settings.busy_reps, torch.device("cpu"))
        finally:
            if load is not None:
                load.kill()
                load.wait()
        ours, spinning = (seconds[k] for k in policies)
        ratio = median_ratio(spinning, ours)
        NOTES.append(f"busy, {machine_state}: {settings.busy_reps} reps; passive {spread(ours)} s, "
                     f"spinning {spread(spinning)} s")
        passive[machine_state] = statistics.median(ours)
        # Shared: passive waiting must not be slower than spinning; idle: it may cost a little.
        target = (">= 1.00x", verdict(ratio, 1.0, True, "x")) if load else (">= 0.90x", verdict(ratio, 0.9, True, "x"))
        rows.append(Row(f"6. `python run.py train.iterations={settings.busy_iterations}`, {machine_state} machine"
                        + (" (one other CPU-bound process)" if load else ""),
                        f"{passive[machine_state]:.1f} s (passive wait)", f"{statistics.median(spinning):.1f} s "
                        "(spinning wait)", f"{ratio:.2f}x", *target))
    # Not collapsing: with one of the cores taken, at most the slowdown of a fair share of the rest.
    fair = os.cpu_count() / max(1, os.cpu_count() - 1)
    slowdown = passive["busy"] / passive["idle"]
    rows.append(Row("6. the default run beside one other CPU-bound process, against the idle machine",
                    f"{passive['busy']:.1f} s (busy)", f"{passive['idle']:.1f} s (idle)", f"{slowdown:.2f}x",
                    f"<= {fair:.2f}x", verdict(slowdown, fair, False, "x")))
    progress("busy: " + "; ".join(f"{r.measure}: {r.figure}" for r in rows))
    return rows


# --- the table -----------------------------------------------------------------------------------


MEASURES = {"step": step_rows, "peak": peak_rows, "inception": inception_rows, "cache": cache_rows,
            "study": study_rows, "startup": startup_rows, "busy": busy_rows}


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds every process of the machine has used so far, from /proc/stat; those of this
    process and its finished children): what others used during a run is the difference."""
    own = os.times()
    own_seconds = own.user + own.system + own.children_user + own.children_system
    if not Path("/proc/stat").exists():  # not Linux: unknown
        return math.nan, own_seconds
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK"), own_seconds


def machine(device: str) -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    gpu = f", GPU {torch.cuda.get_device_name()}" if device == "cuda" else ""
    return (f"Machine: {cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} torch "
            f"threads, device {device}{gpu}, Python {platform.python_version()}")


def table(rows: list[Row]) -> str:
    lines = ["| measurement | this project | baseline | figure | target | verdict |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.measure} | {r.ours} | {r.baseline} | {r.figure} | {r.target} | {r.verdict} |" for r in rows]
    return "\n".join(lines)


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and smaller sizes (for tests)")
    parser.add_argument("--only", action="append", default=[], metavar="ROW",
                        help=f"run only these rows (repeatable or comma-separated): {', '.join(ROWS)}")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for this project's side of the step and peak rows, e.g. "
                             "speed.fused_optimizer=true (the reference loop stays plain fp32)")
    args = parser.parse_args(argv)
    args.only = [name for value in args.only for name in value.split(",") if name]
    unknown = set(args.only) - set(ROWS)
    if unknown:
        parser.error(f"unknown rows {sorted(unknown)}; choose from {', '.join(ROWS)}")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    EXTRA[:] = args.set
    started, cpu_before = time.perf_counter(), cpu_seconds()
    print(machine(args.device) + (f"; this project with {' '.join(args.set)}" if args.set else ""))
    print()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="wgan-bench-") as tmp:
        for name in args.only or ROWS:
            progress(f"measuring {name}")
            rows += MEASURES[name](settings, args.device, Path(tmp))
    print(table(rows))
    print()
    print(f"Medians of {settings.reps} interleaved repetitions (toy step and peak rows: {settings.toy_reps}, "
          f"Inception: {settings.inception_reps}, study: {settings.study_reps}, start-up: {settings.startup_reps}, busy: {settings.busy_reps}); "
          "ratios are medians of the ratios of neighbouring pairs. "
          f"Total {time.perf_counter() - started:.0f} s.")
    for note in NOTES:
        print(f"- {note}")
    (busy, own), (busy_before, own_before) = cpu_seconds(), cpu_before
    others = max(0.0, (busy - busy_before) - (own - own_before)) / ((time.perf_counter() - started) * os.cpu_count())
    if not math.isnan(others):
        print(f"- other processes used {others:.0%} of this machine's CPU time during the run"
              + ("; the figures are disturbed: run again on a quiet machine" if others > 0.05 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
