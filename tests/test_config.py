"""Every option of every config group composes, validates and builds; bad values name their key."""
from __future__ import annotations

import dataclasses
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf import DictConfig, ListConfig, OmegaConf, ValidationError

from helpers import CONF_DIR, ROOT, require_fid_helper
from wgan.config import build, compose_config, method_name, validate
from wgan.dataset import DatasetNotFound
from wgan.metrics import REGISTRY
from wgan.optimizer import build_optimizers
from wgan.train import run
from wgan.schema import ConfigError

GROUPS = ["dataset", "arch", "lipschitz", "loss", "optimizer", "method", "metrics", "logger"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml"))


# Dataset options whose files are not on this machine: building them must say how to get them.
NEEDS_FILES = {"cifar10", "mnist", "imagenet32", "lsun_bedroom", "imagefolder", "text"}
# Dataset options whose default metrics are the Inception ones: checked with the offline weights.
INCEPTION_BY_DEFAULT = {"cifar10", "imagenet32", "lsun_bedroom", "imagefolder"}


def overrides_for(group: str, option: str) -> list[str]:
    overrides = [f"{group}={option}"]
    if (group, option) in (("arch", "text_resnet"), ("metrics", "text")):  # text: Debian's license texts
        overrides += ["dataset=text", "dataset.source=files", "dataset.files=[/usr/share/common-licenses]",
                      "arch.dim=16"]
    elif group == "arch" and option not in ("mlp", "random"):
        overrides.append("dataset=synthetic")  # image architectures need image data
    if group == "metrics" and option == "classifier":
        overrides.append("dataset=fashion_mnist")  # the classifier scores MNIST-like data
    if group == "metrics" and option == "inception":
        overrides.append("dataset=synthetic")
    if "metrics=inception" in overrides or (group == "dataset" and option in INCEPTION_BY_DEFAULT):
        overrides.append("metrics.inception.weights=fid_helper")  # the weights that install offline
    return overrides


@pytest.mark.parametrize(
    "group,option", [(g, o) for g in GROUPS for o in options(g)], ids=lambda v: str(v)
)
@pytest.mark.slow
def test_every_option_composes_and_builds(group, option):
    overrides = overrides_for(group, option)
    if "metrics.inception.weights=fid_helper" in overrides:
        require_fid_helper()
    cfg = compose_config(overrides)
    validate(cfg)
    if group == "dataset" and option in NEEDS_FILES:
        with pytest.raises(DatasetNotFound, match=re.escape(str(cfg.dataset.root))):
            build(cfg.dataset)
        return
    dataset = build(cfg.dataset)
    real = dataset.sample(4)
    assert real.shape == (4, *dataset.shape) and torch.isfinite(real).all()
    arch = build(cfg.arch)
    lipschitz = build(cfg.lipschitz)
    generator = arch.generator(dataset.shape)
    critic = lipschitz.wrap_critic(arch.critic(dataset.shape, lipschitz.critic_norm))
    fake = generator(generator.sample_noise(4, "cpu"))
    assert fake.shape == real.shape
    assert critic(fake).shape == (4,)
    loss = build(cfg.loss)
    assert torch.isfinite(loss.critic(critic(real), critic(fake)))
    opt_g, opt_d = build_optimizers(cfg.optimizer, generator, critic)
    assert opt_g.param_groups[0]["params"][0] is next(generator.parameters())
    assert set(cfg.metrics.names) <= set(REGISTRY)
    assert cfg.logger._target_ in ("wgan.logger.WandbLogger", "wgan.logger.NullLogger")


def optimizer_settings(cfg):
    opt = cfg.optimizer.critic
    return opt._target_.split(".")[-1], opt.lr, list(opt.get("betas", []))


@pytest.mark.parametrize(
    "overrides,method,optimizer",
    [
        ([], "wgan_gp", ("Adam", 1e-4, [0.0, 0.9])),
        (["method=wgan_gp"], "wgan_gp", ("Adam", 1e-4, [0.0, 0.9])),
        (["method=wgan_clip"], "wgan_clip", ("tf1_rmsprop", 5e-5, [])),
        (["method=dcgan"], "gan", ("Adam", 2e-4, [0.5, 0.999])),
        (["method=lsgan"], "lsgan", ("tf1_rmsprop", 1e-4, [])),
        (["lipschitz=clip"], "wgan_clip", ("tf1_rmsprop", 5e-5, [])),
        (["lipschitz=clip", "optimizer=adam"], "wgan_clip", ("Adam", 1e-4, [0.0, 0.9])),
        (["method=wgan_clip", "optimizer=adam_gan"], "wgan_clip", ("Adam", 2e-4, [0.5, 0.999])),
        (["loss=hinge", "lipschitz=sn"], "hinge_sn", ("Adam", 1e-4, [0.0, 0.9])),
        (["lipschitz=gp_onesided"], "wgan_gp_onesided", ("Adam", 1e-4, [0.0, 0.9])),
    ],
)
@pytest.mark.slow
def test_methods_bring_the_papers_optimizers(overrides, method, optimizer):
    cfg = compose_config(["~recipe", *overrides])  # the paper's defaults, without the toy recipe
    assert method_name(cfg) == method
    assert optimizer_settings(cfg) == optimizer


def test_paper_settings_of_the_defaults():
    cfg = compose_config(["~recipe"])
    assert cfg.lipschitz.lam == 10.0 and cfg.train.n_critic == 5 and cfg.train.lr_decay.value == "constant"
    assert compose_config(["lipschitz=clip"]).lipschitz.bound == 0.01
    assert (cfg.arch.width, cfg.arch.depth) == (512, 3)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["toy_8gaussians", "toy_25gaussians", "toy_swissroll"])
@pytest.mark.parametrize("lipschitz", ["gp", "gp_onesided"])
def test_toy_recipe_applies_to_the_penalty_on_toy_data(dataset, lipschitz):
    cfg = compose_config([f"dataset={dataset}", f"lipschitz={lipschitz}"])
    assert cfg.lipschitz.lam == 0.1 and cfg.lipschitz.one_sided == (lipschitz == "gp_onesided")
    assert (cfg.optimizer.generator.lr, cfg.optimizer.critic.lr) == (2e-3, 2e-3)
    assert list(cfg.optimizer.generator.betas) == list(cfg.optimizer.critic.betas) == [0.5, 0.9]  # gan_toy.py's
    assert cfg.train.lr_decay.value == "linear"


def test_the_official_toy_recipe_is_gan_toy_py():
    cfg = compose_config(["recipe=toy_gp_official"])
    assert (cfg.lipschitz.lam, cfg.optimizer.critic.lr, list(cfg.optimizer.critic.betas)) == (0.1, 1e-4, [0.5, 0.9])
    assert cfg.optimizer.generator.lr == 1e-4 and cfg.train.lr_decay.value == "constant"
    assert (cfg.train.batch_size, cfg.train.n_critic, cfg.arch.width, cfg.arch.depth) == (256, 5, 512, 3)


def test_command_line_overrides_the_recipe():
    cfg = compose_config(["lipschitz.lam=5", "optimizer.critic.lr=3e-4"])
    assert (cfg.lipschitz.lam, cfg.optimizer.critic.lr, cfg.optimizer.generator.lr) == (5.0, 3e-4, 2e-3)


def test_the_recipe_stays_out_of_other_methods():
    cfg = compose_config(["lipschitz=clip"])
    assert cfg.optimizer.critic.lr == 5e-5 and cfg.train.lr_decay.value == "constant"


@pytest.mark.parametrize("overrides", [["optimizer=rmsprop"], ["method=wgan_gp_rmsprop"], ["optimizer=adam_gan"]])
def test_the_toy_recipe_tunes_adam_only(overrides):
    """It sets Adam's betas, which other optimizers do not have: they keep their own settings."""
    cfg = compose_config(overrides)
    assert cfg.train.lr_decay.value == "constant" and cfg.optimizer.critic.lr != 2e-3


@pytest.mark.parametrize(
    "override,message",
    [
        ("optimizer.critic.betas=[0.5,1.5]", "optimizer.critic.betas=[0.5, 1.5] is out of range: must be < 1"),
        ("metrics.names=[toy_w1,fid]", "metrics.names: unknown metric 'fid'"),
        ("lipschitz.lam=nan", "lipschitz.lam=nan is out of range: must be a finite number"),
        ("seed=18446744073709551616", "seed=18446744073709551616 is out of range: must be < 18446744073709551616"),
        ("study=..", "study='..' is not a single folder name"),
        ("study=a/b", "study='a/b' is not a single folder name"),
        ("study=''", "study='' is not a single folder name"),
        ("study=.hidden", "study='.hidden' is not a single folder name (it names outputs/<study> and "
                          "multirun/<study>): it must be non-empty, without '/', and not start with '.'"),
        ("metrics=classifier", "metrics.names: 'classifier' scores MNIST and Fashion-MNIST, not dataset=toy_8gaussians"),
    ],
)
@pytest.mark.slow
def test_out_of_range_values_name_the_key(override, message):
    cfg = compose_config([override])
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(cfg)


def test_clip_bound_is_validated():
    with pytest.raises(ConfigError, match=r"lipschitz.bound=-0.1 is out of range: must be > 0"):
        validate(compose_config(["lipschitz=clip", "lipschitz.bound=-0.1"]))
    for value in ("inf", "-inf", "nan"):
        with pytest.raises(ConfigError, match=f"lipschitz.bound={value} is out of range: must be a finite number"):
            validate(compose_config(["lipschitz=clip", f"lipschitz.bound={value}"]))


@pytest.mark.slow
def test_seeds_take_64_bits_and_no_more(train_tiny):
    """torch.manual_seed takes seeds below 2**64; the largest trains (evaluations included, whose
    seeds derive from it), the next fails before training, for `seed` and `arch.seed` alike."""
    with pytest.raises(ConfigError, match="arch.seed=18446744073709551616 is out of range: must be < 18446744073709551616"):
        validate(compose_config(["arch=random", f"arch.seed={2**64}"]))
    validate(compose_config(["arch=random", f"arch.seed={2**64 - 1}"]))
    results = train_tiny(f"seed={2**64 - 1}")
    assert results["status"] == "complete" and results["seed"] == 2**64 - 1


# A toy MLP generator with batch norm: arch=random with the norm drawn always on, small.
BATCH_NORM_GENERATOR = ["logger=none", "arch=random", "arch.g.norm=[true]", "arch.g.depth=[4]", "arch.g.width=[16]",
                        "arch.d.depth=[4]", "arch.d.width=[16]"]


@pytest.mark.parametrize("overrides,batches", [
    (["metrics.batch_size=1"], "batches of one sample"),
    (["metrics.num_samples=201"], "a last batch of one sample (metrics.num_samples=201)"),
    (["metrics.final_num_samples=1001"], "a last batch of one sample (metrics.final_num_samples=1001)"),
])
@pytest.mark.slow
def test_sampling_batches_of_one_sample_fail_before_training_with_batch_norm(tmp_path, overrides, batches):
    batch_size = overrides[0].split("=")[1] if "batch_size" in overrides[0] else "100"
    with pytest.raises(ConfigError, match=re.escape(
            f"metrics.batch_size={batch_size} makes {batches}, but the generator has batch norm and "
            "metrics.batch_stats=true normalizes each sampling batch by its own statistics")):
        run(compose_config([*BATCH_NORM_GENERATOR, *overrides]), tmp_path)
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "config.yaml").exists()
    # With running averages, or a generator without batch norm, one sample is fine.
    for fine in (["metrics.batch_stats=false"], ["arch.g.norm=[false]"]):
        cfg = compose_config([*BATCH_NORM_GENERATOR, *overrides, *fine, "train.iterations=1"])
        assert run(cfg, tmp_path / fine[0])["status"] == "complete"


@pytest.mark.slow
def test_a_run_directory_that_is_a_file_is_named(tmp_path):
    file = tmp_path / "file"
    file.write_text("not a folder")
    for where, message in [
        ([f"hydra.run.dir={file}"], f"invalid config: run directory {file} is a file, not a folder"),
        ([f"hydra.run.dir={file}/run"], f"invalid config: run directory {file}/run: {file} is a file, not a folder"),
        (["-m", f"hydra.sweep.dir={file}", "seed=0,1"],
         f"invalid config: run directory {file}/seed=0: {file} is a file, not a folder"),
    ]:
        result = subprocess.run([sys.executable, "run.py", *where, "logger=none"], cwd=ROOT,
                                capture_output=True, text=True, timeout=300)
        output = result.stdout + result.stderr
        assert result.returncode == 2 and message in output and "Traceback" not in output
    assert file.read_text() == "not a folder"


@pytest.mark.slow
def test_a_study_name_that_is_a_path_creates_nothing(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "logger=none", "study=../escaped"],
                            cwd=work, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "invalid config: study='../escaped' is not a single folder name" in result.stdout
    assert list(tmp_path.rglob("*")) == [work]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised when no GPU is present")
def test_cuda_without_gpu_is_rejected():
    with pytest.raises(ConfigError, match="device=cuda but torch sees no CUDA GPU"):
        validate(compose_config(["device=cuda"]))


@pytest.mark.parametrize(
    "override,message",
    [
        ("train.n_critic=abc", "Value 'abc' of type 'str' could not be converted to Integer\n    full_key: train.n_critic"),
        ("device=tpu", "Invalid value 'tpu', expected one of [auto, cpu, cuda]\n    full_key: device"),
        ("lipschitz.lam=big", "full_key: lipschitz.lam"),
        ("train.n_criitc=3", "Key 'n_criitc' not in 'TrainConfig'"),
        ("lipschitz=clp", "Could not find 'lipschitz/clp'"),
    ],
)
def test_wrong_types_and_names_fail_at_composition(override, message):
    with pytest.raises(ConfigCompositionException) as raised:
        compose_config([override])
    assert message in f"{raised.value} {raised.value.__cause__}"


@pytest.mark.slow
def test_unknown_option_lists_the_valid_ones():
    result = subprocess.run(
        [sys.executable, "run.py", "lipschitz=clp"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "Available options in 'lipschitz'" in result.stderr
    for option in ("clip", "gp", "gp_onesided", "none", "sn"):
        assert f"\t{option}\n" in result.stderr


@pytest.mark.parametrize("override,message", [
    ("+iterations=20", "invalid config: iterations: no such setting; did you mean train.iterations?"),
    ("+train.iteratons=5", "invalid config: train.iteratons: no such setting; did you mean train.iterations?"),
    ("+arch.widht=3", "invalid config: arch.widht: no such setting; did you mean arch.width?"),
    ("+optimizer.critic.lrr=1", "invalid config: optimizer.critic.lrr: no such setting; did you mean "
                                "optimizer.critic.lr or optimizer.generator.lr?"),
])
@pytest.mark.slow
def test_added_keys_that_no_schema_has_are_refused_before_training(override, message, tmp_path):
    """Hydra's `+key=value` adds a key to any node (and suggests it for a mistyped key): the closed
    structured config refuses it, naming the close matches, instead of training without it."""
    result = subprocess.run([sys.executable, "run.py", override, "logger=none", f"hydra.run.dir={tmp_path}"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2
    assert message in result.stderr + result.stdout
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "results.json").exists()


def numeric_settings(cfg: DictConfig, prefix: str = "") -> dict[str, dict]:
    """{key: bounds} of every numeric setting of `cfg` (numbers, lists of numbers, Optional
    numbers), with the range its dataclass declares (empty if none)."""
    schema = OmegaConf.get_type(cfg)
    fields = {f.name: f for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else {}
    found = {}
    for key in cfg:
        value, field = cfg[key], fields.get(key)
        if isinstance(value, DictConfig):
            found.update(numeric_settings(value, f"{prefix}{key}."))
            continue
        items = list(value) if isinstance(value, ListConfig) else [value]
        declared = str(field.type) if field else ""
        numbers = items and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items)
        if numbers or (value is None and re.search(r"\b(int|float)\b", declared)):
            found[f"{prefix}{key}"] = field.metadata.get("bounds", {}) if field else {}
    return found


SYMBOLS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def outside(bounds: dict) -> float:
    name, limit = next(iter(bounds.items()))
    return {"ge": limit - 1, "gt": limit, "le": limit + 1, "lt": limit}[name]


@pytest.mark.slow
def test_every_numeric_setting_of_every_option_is_typed_and_range_checked():
    settings = {}  # key -> (a config holding it, bounds)
    for group in GROUPS:
        for option in options(group):
            cfg = compose_config(overrides_for(group, option))
            settings.update({key: (cfg, bounds) for key, bounds in numeric_settings(cfg).items()})
    assert len(settings) > 40
    assert [key for key, (_, bounds) in settings.items() if not bounds] == []
    floats = 0
    for key, (cfg, bounds) in settings.items():
        wrong = cfg.copy()
        with pytest.raises(ValidationError, match=re.escape(f"full_key: {key}")):
            OmegaConf.update(wrong, key, "abc", merge=False)
        is_list = OmegaConf.is_list(OmegaConf.select(cfg, key))
        OmegaConf.update(wrong, key, [outside(bounds)] if is_list else outside(bounds), merge=False)
        name, limit = next(iter(bounds.items()))
        with pytest.raises(ConfigError, match=re.escape(f"{key}=") + ".* is out of range: must be "
                           + re.escape(f"{SYMBOLS[name]} {limit}")):
            validate(wrong)
        value = OmegaConf.select(cfg, key)
        if isinstance(value[0] if is_list else value, float):  # OmegaConf takes inf and nan for floats
            floats += 1
            for not_finite in (math.inf, -math.inf, math.nan):
                OmegaConf.update(wrong, key, [not_finite] if is_list else not_finite, merge=False)
                with pytest.raises(ConfigError, match=re.escape(f"{key}=") + ".* is out of range: must be a finite number"):
                    validate(wrong)
    assert floats > 10


@pytest.mark.parametrize("overrides,message", [
    (["arch=dcgan"], "arch=dcgan needs images"),
    (["dataset=synthetic", "dataset.resolution=48", "arch=dcgan"],
     "arch=dcgan supports 32x32 and 64x64 images, not 48x48; set dataset.resolution"),
    (["dataset=synthetic", "dataset.channels=2"], "dataset.channels=2: must be 1 (gray) or 3 (RGB)"),
    (["dataset=synthetic", "metrics=classifier"],
     "metrics.names: 'classifier' scores MNIST and Fashion-MNIST, not dataset=synthetic"),
    (["dataset=fashion_mnist", "dataset.channels=3", "metrics=classifier"],
     "metrics.names: 'classifier' takes 32x32 gray images, not dataset.resolution=32 with dataset.channels=3"),
    (["metrics=inception"], "metrics.names: 'inception' scores images, not dataset=toy_8gaussians"),
    (["speed.cuda_graphs=true", "train.lr_decay=linear"], "speed.cuda_graphs=true needs train.lr_decay=constant"),
])
@pytest.mark.slow
def test_incompatible_choices_fail_before_training(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        run(compose_config(["logger=none", *overrides]), tmp_path)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_help_is_the_projects_own_page_listed_from_the_config_folders():
    result = subprocess.run([sys.executable, "run.py", "--help", "sweeps=robustness_toy"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    page = result.stdout
    assert "schema/" not in page and "powered by Hydra" not in page
    groups = sorted(p.name for p in Path(CONF_DIR).iterdir() if p.is_dir() and p.name != "hydra")
    for group in groups:  # every option of every group, the chosen one in brackets
        options = [p.stem for p in (Path(CONF_DIR) / group).glob("*.yaml")]
        line = next(line for line in page.splitlines() if line.startswith(f"  {group}: "))
        assert sorted(o.strip("[]") for o in line.split(": ", 1)[1].split(", ")) == sorted(options)
    assert "  arch: dcgan" in page and "[random]" in page and "[toy_8gaussians]" in page
    for study in ("figure2", "figure3", "robustness_paper", "robustness_toy", "robustness_fmnist", "table3_resnet"):
        assert f"\n  {study}: " in page
    assert "wandb_lambda_lr" not in page  # a W&B sweep file, not a Hydra study
    for launcher in ("basic", "joblib", "submitit_local", "submitit_slurm", "slurm"):
        assert f"\n  {launcher}: " in page
    assert "train.iterations=600" in page and "study=robustness_toy" in page  # the command's values


def test_no_setting_has_two_defaults():
    """Each value conf/config.yaml sets is the one default of its setting: its schema field has
    none (MISSING: the file gives it) or the same one."""
    from enum import Enum

    import yaml
    from omegaconf import MISSING

    from wgan.config import Config

    def leaves(tree: dict, prefix: str = ""):
        for key, value in tree.items():
            if key not in ("defaults", "hydra"):
                yield from leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [(f"{prefix}{key}", value)]

    def schema_default(key: str):
        *parents, leaf = key.split(".")
        schema = Config
        for part in parents:
            schema = {f.name: f for f in dataclasses.fields(schema)}[part].default_factory
        default = {f.name: f for f in dataclasses.fields(schema)}[leaf].default
        return default.value if isinstance(default, Enum) else default

    settings = dict(leaves(yaml.safe_load((CONF_DIR / "config.yaml").read_text())))
    assert {"train.iterations", "train.batch_size", "eval.every", "ckpt.every", "speed.precision"} <= set(settings)
    assert {key: value for key, value in settings.items() if schema_default(key) not in (MISSING, value)} == {}
