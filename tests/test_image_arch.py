"""The image architectures: shapes and a finite penalty at every supported size, the structure the
paper describes (101 layers, normalization by method), unbuildable choices named, and the random
space: valid, covering Table 1, and the same architecture for the same seed."""
from __future__ import annotations

from collections import defaultdict
from functools import cache

import pytest
import torch
from hydra.utils import instantiate
from torch import nn

from wgan.config import compose_config, validate
from wgan.arch.init import WEIGHT_LAYERS
from wgan.lipschitz import GradientPenalty
from wgan.schema import ConfigError

IMAGE_ARCHS = ["dcgan", "dcgan_constfilter", "dcgan_nonorm", "dcgan_gated", "dcgan_tanh", "mlp_generator",
               "resnet101", "resnet_cifar", "random"]
SHAPES = [(c, s, s) for s in (32, 64) for c in (1, 3)]
# Small widths keep the test fast; the structure is the same at any width.
RANDOM_SMALL = ["arch.g.filters=[8]", "arch.d.filters=[8]", "arch.g.width=[16]", "arch.d.width=[16]"]
SMALL = {"random": [*RANDOM_SMALL, "arch.g.depth=[8]", "arch.d.depth=[8]"],
         "mlp_generator": ["arch.dim=8", "arch.width=32"]}


def build_arch(option: str, *overrides: str):
    cfg = compose_config([f"arch={option}", *overrides])
    validate(cfg)
    return instantiate(cfg.arch)


def weight_layers(net: nn.Module, shortcuts: bool = False) -> int:
    """Conv, transposed conv and linear modules; those on residual shortcuts only if `shortcuts`."""
    return sum(isinstance(m, WEIGHT_LAYERS) and (shortcuts or "shortcut" not in name)
               for name, m in net.named_modules())


def check_pair(arch, shape, norm="layer", n=2):
    torch.manual_seed(0)
    generator, critic = arch.generator(shape), arch.critic(shape, norm)
    fake = generator(generator.sample_noise(n, "cpu"))
    assert fake.shape == (n, *shape)
    assert len(shape) == 1 or fake.abs().max() <= 1  # images come through tanh
    real = torch.rand(n, *shape) * 2 - 1
    assert critic(real).shape == (n,)
    penalty, norms = GradientPenalty().penalty(critic, real, fake)
    assert torch.isfinite(penalty) and norms.shape == (n,)
    penalty.backward()
    assert all(torch.isfinite(p.grad).all() for p in critic.parameters() if p.grad is not None)


@pytest.mark.slow
@pytest.mark.parametrize("option", IMAGE_ARCHS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_shapes_and_finite_penalty(option, shape):
    check_pair(build_arch(option, *SMALL.get(option, ["arch.dim=8"])), shape)


@pytest.mark.parametrize("size", [32, 64])
def test_resnet101_has_101_weight_layers(size):
    """Counted as ResNet-101 is: the 4 projection shortcuts of the width-changing blocks aside."""
    arch = build_arch("resnet101")
    generator, critic = arch.generator((3, size, size)), arch.critic((3, size, size), "layer")
    for net in (generator, critic):
        assert weight_layers(net) == 101
        assert weight_layers(net, shortcuts=True) == 105
    if size == 64:  # the official size, at the default width, forward once
        fake = generator(generator.sample_noise(2, "cpu"))
        assert fake.shape == (2, 3, 64, 64) and critic(fake).shape == (2,)


def test_official_dcgan_structure():
    """gan_64x64.py: 4 transposed convs 8d->4d->2d->d->3; gan_cifar.py: 3 from 4d, d = 64 by default."""
    arch = build_arch("dcgan")
    for size, channels in ((64, [512, 256, 128, 64, 3]), (32, [256, 128, 64, 3])):
        ups = [m for m in arch.generator((3, size, size)).modules() if isinstance(m, nn.ConvTranspose2d)]
        assert [(m.in_channels, m.out_channels) for m in ups] == list(zip(channels, channels[1:]))
        assert all(m.kernel_size == (5, 5) and m.stride == (2, 2) for m in ups)
        downs = [m for m in arch.critic((3, size, size), "layer").modules() if isinstance(m, nn.Conv2d)]
        assert [(m.in_channels, m.out_channels) for m in downs] == list(zip([3, *channels[-2::-1]], channels[-2::-1]))


@pytest.mark.parametrize(
    "option,size,norm,expected",
    [
        ("dcgan", 32, "batch", nn.BatchNorm2d), ("dcgan", 64, "layer", nn.GroupNorm), ("dcgan", 32, "none", None),
        ("resnet101", 32, "layer", nn.GroupNorm), ("dcgan_nonorm", 32, "batch", None),
        ("resnet_cifar", 32, "batch", None), ("mlp_generator", 64, "layer", nn.GroupNorm),
        # gan_cifar.py's 32x32 critic has no normalization under the penalty (its batch norms are
        # guarded by MODE != 'wgan-gp'); gan_64x64.py's has layer norm.
        ("dcgan", 32, "layer", None), ("mlp_generator", 32, "layer", None),
    ],
)
@pytest.mark.slow
def test_critic_normalization_follows_the_method_and_the_official_script(option, size, norm, expected):
    critic = build_arch(option, "arch.dim=8").critic((3, size, size), norm)
    kinds = {type(m) for m in critic.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))}
    assert kinds == ({expected} if expected else set())


@pytest.mark.slow
@pytest.mark.parametrize("setting,expected", [("layer", {nn.GroupNorm}), ("none", set())])
def test_the_critic_norm_under_the_penalty_can_be_chosen(setting, expected):
    for size in (32, 64):
        arch = build_arch("dcgan", "arch.dim=8", f"arch.d_norm_under_penalty={setting}")
        critic = arch.critic((3, size, size), "layer")
        assert {type(m) for m in critic.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))} == expected


def test_the_32x32_dcgan_generator_normalizes_its_linear_outputs_one_by_one():
    """gan_cifar.py: Batchnorm over axis [0] of the linear layer's 4*4*4d outputs, before the reshape;
    gan_64x64.py (and the random architectures' study script) normalize per channel of the grid."""
    first = lambda size: build_arch("dcgan", "arch.dim=8").generator((3, size, size)).net[1]  # noqa: E731
    assert isinstance(first(32), nn.BatchNorm1d) and first(32).num_features == 4 * 4 * 4 * 8
    assert isinstance(first(64), nn.BatchNorm2d) and first(64).num_features == 8 * 8


def test_layer_norm_is_per_sample_over_channels_and_positions():
    norm = build_arch("dcgan", "arch.dim=8").critic((3, 64, 64), "layer")[3]
    assert isinstance(norm, nn.GroupNorm) and norm.num_groups == 1
    x = torch.randn(2, norm.num_channels, 8, 8) * 5 + 3
    y = norm(x)
    assert torch.allclose(y.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)


@pytest.mark.parametrize(
    "option,shape,message",
    [
        ("dcgan", (2,), "arch=dcgan needs images"),
        ("resnet101", (2,), "arch=resnet101 needs images"),
        ("dcgan", (1, 28, 28), "supports 32x32 and 64x64 images, not 28x28; set dataset.resolution"),
        ("resnet_cifar", (3, 48, 48), "not 48x48"),
        ("dcgan_gated", (2, 32, 32), "1 or 3 channels, not 2; set dataset.channels"),
        ("random", (3, 16, 16), "arch=random supports 32x32 and 64x64"),
    ],
)
@pytest.mark.slow
def test_unbuildable_shapes_name_the_setting(option, shape, message):
    arch = build_arch(option)
    for build in (arch.generator, lambda s: arch.critic(s, "layer")):
        with pytest.raises(ConfigError, match=message):
            build(shape)


def test_a_bad_value_in_a_random_space_list_names_its_key():
    with pytest.raises(ConfigError, match=r"arch.g.depth=\[2, 4\] is out of range: must be >= 4"):
        build_arch("random", "arch.g.depth=[2,4]")


def test_an_empty_random_setting_is_named():
    arch = build_arch("random", "arch.d.norm=[]")
    with pytest.raises(ConfigError, match="arch.d.norm is empty"):
        arch.critic((3, 32, 32), "layer")


@cache
def random_space():
    return compose_config(["arch=random"]).arch


def random_nets(seed: int, shape: tuple[int, ...]):
    arch = instantiate(random_space(), seed=seed)  # composed once: composing takes longer than building
    with torch.device("meta"):  # structure only: no memory, no initialization
        return arch, arch.generator(shape), arch.critic(shape, "layer")


@pytest.mark.slow
def test_random_space_builds_200_valid_networks_covering_table_1():
    space = random_space()
    seen = defaultdict(set)
    for seed in range(200):
        arch, generator, critic = random_nets(seed, (3, 32, 32))
        for key, value in arch.choices.items():
            seen[key].add(value)
        for net, prefix in ((generator, "g"), (critic, "d")):
            assert weight_layers(net) == arch.choices[f"{prefix}_depth"]
    for net in ("g", "d"):
        for setting in ("nonlinearity", "depth", "norm", "filters", "width"):
            expected = {v.value if hasattr(v, "value") else v for v in space[net][setting]}
            assert seen[f"{net}_{setting}"] == expected, (net, setting)
    assert all(type(v) in (str, int, bool) for v in arch.choices.values())


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 64, 64), (2,)], ids=str)
def test_random_architectures_forward(shape):
    for seed in range(3):
        check_pair(build_arch("random", f"arch.seed={seed}", *RANDOM_SMALL), shape, n=4)


def test_equal_seeds_give_equal_architectures():
    for seed in (0, 7, 199):
        (a, g1, d1), (b, g2, d2) = random_nets(seed, (3, 32, 32)), random_nets(seed, (3, 32, 32))
        assert a.choices == b.choices
        assert (repr(g1), repr(d1)) == (repr(g2), repr(d2))
    assert random_nets(0, (2,))[0].choices != random_nets(1, (2,))[0].choices


def test_random_draws_are_pinned():
    """The draw depends on the seed and the setting's name only (no torch RNG, no machine state):
    these values must never change, or recorded studies no longer name their architectures."""
    torch.manual_seed(123)
    assert build_arch("random", "arch.seed=0").choices == {
        "g_nonlinearity": "softplus", "g_depth": 4, "g_norm": True, "g_filters": 128, "g_width": 512,
        "d_nonlinearity": "relu", "d_depth": 4, "d_norm": True, "d_filters": 32, "d_width": 128,
    }


def test_narrowing_one_setting_keeps_the_others():
    wide = build_arch("random", "arch.seed=5").choices
    narrow = build_arch("random", "arch.seed=5", "arch.g.depth=[20]").choices
    assert narrow["g_depth"] == 20
    assert {k: v for k, v in narrow.items() if k != "g_depth"} == {k: v for k, v in wide.items() if k != "g_depth"}


def test_random_toy_mlps_follow_the_drawn_depth_width_and_norm():
    arch, generator, critic = random_nets(3, (2,))
    c = arch.choices
    assert weight_layers(generator) == c["g_depth"] and weight_layers(critic) == c["d_depth"]
    assert generator.net[0][0].out_features == c["g_width"]
    assert any(isinstance(m, nn.BatchNorm1d) for m in generator.modules()) == c["g_norm"]
    assert any(isinstance(m, nn.GroupNorm) for m in critic.modules()) == c["d_norm"]
