"""The building blocks against hand-computed values: penalty, clipping, spectral norm, losses, data."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from wgan.arch.layers import PiecewiseLinear, TF1Elu
from wgan.config import build, compose_config
from wgan.dataset.toy import ToyDataset
from wgan.files import RunFiles
from wgan.lipschitz import GradientPenalty, NoConstraint, SpectralNorm, WeightClipping, interpolates
from wgan.loss import HingeLoss, LeastSquaresLoss, StandardGANLoss, WassersteinLoss
from wgan.metrics import EvalContext, protocol_name
from wgan.metrics.toy import modes_and_quality, wasserstein1
from wgan.schema import ConfigError
from wgan.sampling import sampling_mode


def linear_critic(weights: list[float]) -> nn.Module:
    critic = nn.Sequential(nn.Linear(len(weights), 1), nn.Flatten(0))
    with torch.no_grad():
        critic[0].weight.copy_(torch.tensor([weights]))
        critic[0].bias.fill_(0.3)
    return critic


def test_gradient_penalty_of_a_linear_critic():
    # D(x) = w.x + b has input gradient w everywhere: penalty = lambda * (||w|| - 1)^2 = 10 * (5 - 1)^2.
    critic = linear_critic([3.0, 4.0])
    real, fake = torch.randn(64, 2), torch.randn(64, 2)
    penalty, norms = GradientPenalty(lam=10.0).penalty(critic, real, fake)
    assert torch.allclose(norms, torch.full((64,), 5.0))
    assert penalty.item() == pytest.approx(160.0)
    # create_graph: the penalty is differentiable in w, d/dw = lambda * 2 (||w|| - 1) w / ||w||.
    penalty.backward()
    assert torch.allclose(critic[0].weight.grad, torch.tensor([[48.0, 64.0]]))


def test_one_sided_penalty_ignores_small_gradients():
    critic = linear_critic([0.36, 0.48])  # ||w|| = 0.6
    real, fake = torch.randn(8, 2), torch.randn(8, 2)
    two_sided, _ = GradientPenalty(lam=10.0).penalty(critic, real, fake)
    one_sided, _ = GradientPenalty(lam=10.0, one_sided=True).penalty(critic, real, fake)
    assert two_sided.item() == pytest.approx(10 * 0.4**2)
    assert one_sided.item() == 0.0


def test_interpolates_lie_on_the_segments():
    real, fake = torch.zeros(1000, 3), torch.ones(1000, 3)
    x = interpolates(real, fake)
    # Each sample is (1 - eps) * (1, 1, 1): one eps per sample, uniform on [0, 1].
    assert torch.allclose(x, x[:, :1].expand(-1, 3))
    assert 0 <= x.min() and x.max() <= 1 and abs(x.mean().item() - 0.5) < 0.05


@pytest.mark.parametrize("slope, torch_activation", [(0.0, nn.ReLU), (0.2, lambda: nn.LeakyReLU(0.2))])
def test_piecewise_linear_gives_torch_relus_values_and_penalty_gradients(slope, torch_activation):
    def critic(activation):
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(4, 16), activation(), nn.Linear(16, 16), activation(), nn.Linear(16, 1))

    ours, theirs = critic(lambda: PiecewiseLinear(slope)), critic(torch_activation)
    x = torch.cat([torch.randn(31, 4), torch.zeros(1, 4)])  # the zero row puts pre-activations near 0
    results = []
    for net in (ours, theirs):
        points = x.clone().requires_grad_(True)
        values = net(points)
        (gradient,) = torch.autograd.grad(values.sum(), points, create_graph=True)
        penalty = ((gradient.norm(dim=1) - 1) ** 2).mean()
        penalty.backward()  # the double backward of WGAN-GP
        # torch's ReLU sends zeros where ours sends nothing (None): the same update once the
        # critic loss, which reaches every parameter, is added.
        results.append([values, gradient, *(torch.zeros_like(p) if p.grad is None else p.grad for p in net.parameters())])
    for mine, reference in zip(*results):
        torch.testing.assert_close(mine, reference, rtol=1e-6, atol=1e-7)
    assert results[0][2].abs().sum() > 0  # the penalty does train the first layer


def derivatives(activation: nn.Module, scale: float, x: float) -> tuple[float, float]:
    """(f', f'') of f(x) = scale * activation(x), in float64."""
    point = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    (first,) = torch.autograd.grad(scale * activation(point), point, create_graph=True)
    (second,) = torch.autograd.grad(first, point)
    return first.item(), second.item()


def test_tf1_elu_has_the_second_derivative_tensorflow_computed_in_its_bug_report():
    """tensorflow/tensorflow#11091 (TF 1.2.0): y = 2 elu(-x) at x = 1 gave y' = -0.7357589 (right)
    and y'' = 0.36787945, where the true y'' = 2 / e = 0.7357588. With f = 2 elu, y'(1) = -f'(-1)
    and y''(1) = f''(-1)."""
    assert derivatives(TF1Elu(), 2.0, -1.0) == pytest.approx((0.7357589, 0.36787945))
    assert derivatives(nn.ELU(), 2.0, -1.0) == pytest.approx((0.7357588, 0.7357588))


@pytest.mark.parametrize("scale,x", [(2.0, -1.0), (-3.0, -0.5), (0.5, -2.0), (-3.0, 0.7)])
def test_tf1_elu_second_derivative_follows_the_old_elu_grad_grad(scale, x):
    """TensorFlow's old gradient of EluGrad(g, y) = dx: d/dy = (dx + 2 if dx < -1 else 1) where
    y < 0, so f'' = e^x (dx + 2 or 1) for f = scale * elu with dx = scale e^x; the true f'' is
    dx (0 for x > 0)."""
    dx = scale * math.exp(x) if x < 0 else scale
    tf1 = math.exp(x) * (dx + 2 if dx < -1 else 1) if x < 0 else 0.0
    assert derivatives(TF1Elu(), scale, x) == pytest.approx((dx, tf1))
    assert derivatives(nn.ELU(), scale, x) == pytest.approx((dx, dx if x < 0 else 0.0))


def test_tf1_elu_sends_the_penalty_the_wrong_way_into_the_layers_above():
    """d/da of the input gradient a elu'(x): the true value is elu'(x) = 1 at x = 0.5; TensorFlow's
    d/dg reads dx = a where it should read y, giving a + 1 = -1 for a = -2: the opposite sign."""
    a = torch.tensor(-2.0, dtype=torch.float64, requires_grad=True)
    answers = []
    for activation in (TF1Elu(), nn.ELU()):
        x = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
        (input_gradient,) = torch.autograd.grad(a * activation(x), x, create_graph=True)
        answers.append(torch.autograd.grad(input_gradient, a)[0].item())
    assert answers == [-1.0, 1.0]


def test_tf1_elu_values_and_first_derivatives_are_torchs():
    """To rounding: TensorFlow's EluGrad forms elu'(x) as y + 1, torch from x."""
    x = torch.cat([torch.randn(1000, dtype=torch.float64) * 3, torch.zeros(1, dtype=torch.float64)]).requires_grad_()
    weights = torch.randn_like(x)
    results = []
    for activation in (TF1Elu(), nn.ELU()):
        y = activation(x)
        results.append((y, torch.autograd.grad((weights * y).sum(), x)[0]))
    torch.testing.assert_close(results[0], results[1], rtol=1e-12, atol=1e-15)


def test_clipping_bounds_every_weight_and_counts_the_clipped():
    critic = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    with torch.no_grad():
        for p in critic.parameters():
            p.copy_(torch.linspace(-1, 1, p.numel()).reshape(p.shape))
    clip = WeightClipping(bound=0.5)
    clip.after_critic_step(critic)
    weights = torch.cat([p.flatten() for p in critic.parameters()])
    assert weights.abs().max().item() == 0.5
    expected = float((torch.cat([torch.linspace(-1, 1, p.numel()) for p in critic.parameters()]).abs() >= 0.5).float().mean())
    assert clip.stats(critic)["clip_fraction"] == pytest.approx(expected)


def test_spectral_norm_gives_unit_top_singular_values():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    with torch.no_grad():
        for layer in critic[::2]:
            layer.weight.mul_(7.0)
    critic = SpectralNorm(n_power_iterations=1).wrap_critic(critic)
    for _ in range(30):  # each training-mode forward runs one power iteration
        critic(torch.randn(16, 2))
    for layer in critic[::2]:
        top = torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item()
        assert top == pytest.approx(1.0, abs=0.02)


def test_no_constraint_changes_nothing():
    critic = linear_critic([3.0, 4.0])
    method = NoConstraint()
    assert method.wrap_critic(critic) is critic
    assert method.penalty(critic, torch.zeros(2, 2), torch.ones(2, 2)) == (None, None)


D_REAL, D_FAKE = torch.tensor([1.0, 2.0]), torch.tensor([0.0, -1.0])


def neg_log_sigmoid(x: float) -> float:
    return -math.log(1 / (1 + math.exp(-x)))


@pytest.mark.parametrize(
    "loss,critic_value,generator_value",
    [
        (WassersteinLoss(), -0.5 - 1.5, 0.5),
        (  # official: (xent(fake, 0) + xent(real, 1)) / 2; generator xent(fake, 1)
            StandardGANLoss(),
            ((neg_log_sigmoid(1) + neg_log_sigmoid(2)) / 2 + (neg_log_sigmoid(-0.0) + neg_log_sigmoid(1)) / 2) / 2,
            (neg_log_sigmoid(0) + neg_log_sigmoid(-1)) / 2,
        ),
        # official: (mean((D(real) - 1)^2) + mean(D(fake)^2)) / 2; generator mean((D(fake) - 1)^2)
        (LeastSquaresLoss(), 0.5 * ((0 + 1) / 2 + (0 + 1) / 2), (1 + 4) / 2),
        (HingeLoss(), (0 + 0) / 2 + (1 + 0) / 2, 0.5),
    ],
    ids=["wgan", "gan", "lsgan", "hinge"],
)
def test_losses_on_known_inputs(loss, critic_value, generator_value):
    assert loss.critic(D_REAL, D_FAKE).item() == pytest.approx(critic_value)
    assert loss.generator(D_FAKE).item() == pytest.approx(generator_value)


def test_eight_gaussians_as_in_gan_toy():
    torch.manual_seed(0)
    data = ToyDataset("toy_8gaussians", "eight_gaussians", noise=0.02, scale=1.414)
    radii = data.centres.norm(dim=1)
    assert len(data.centres) == 8 and torch.allclose(radii, torch.full((8,), 2 / 1.414))
    points = data.sample(20000)
    offsets = points - data.centres[torch.cdist(points, data.centres).argmin(dim=1)]
    assert offsets.std().item() == pytest.approx(0.02 / 1.414, rel=0.03)


def test_twentyfive_gaussians_pool_as_gan_toy_builds_it():
    torch.manual_seed(0)
    data = ToyDataset("toy_25gaussians", "twentyfive_gaussians", noise=0.05, scale=2.828, pool_size=100_000)
    assert data.pool.shape == (100_000, 2)
    assert sorted(set(data.centres[:, 0].tolist())) == pytest.approx([v / 2.828 for v in (-4, -2, 0, 2, 4)])
    # Exactly 4,000 points around each centre (centres 0.71 apart, points 0.018 from theirs: no ambiguity).
    nearest = torch.cdist(data.pool, data.centres).argmin(dim=1)
    assert torch.equal(torch.bincount(nearest, minlength=25), torch.full((25,), 4000))
    offsets = data.pool - data.centres[nearest]
    stds = torch.stack([offsets[nearest == k].std(dim=0) for k in range(25)])
    assert stds.tolist() == [pytest.approx([0.05 / 2.828] * 2, rel=0.05)] * 25
    assert offsets.mean().abs() < 1e-3
    # Shuffled: not in the order it was generated, one point per centre in turn.
    assert (nearest == torch.arange(100_000) % 25).float().mean() < 0.06
    batch = data.sample(512)
    assert torch.isin(batch[:, 0], data.pool[:, 0]).all()
    # Drawn from the global RNG, which the trainer seeds.
    torch.manual_seed(0)
    again = ToyDataset("toy_25gaussians", "twentyfive_gaussians", noise=0.05, scale=2.828, pool_size=100_000)
    assert torch.equal(again.pool, data.pool)


def test_a_mixture_pool_splits_evenly_over_the_centres():
    message = ("dataset.pool_size=100001: must be a multiple of the 25 centres of twentyfive_gaussians, which each "
               "get the same number of points (e.g. 100000)")
    with pytest.raises(ConfigError) as info:
        ToyDataset("toy_25gaussians", "twentyfive_gaussians", noise=0.05, scale=2.828, pool_size=100_001)
    assert str(info.value) == message
    with pytest.raises(ConfigError) as info:  # what run.py builds before any model or training step
        build(compose_config(["dataset=toy_25gaussians", "dataset.pool_size=100001"]).dataset)
    assert str(info.value) == message
    with pytest.raises(ConfigError, match=r"pool_size=7: must be a multiple of the 8 centres .* \(e.g. 8\)"):
        ToyDataset("toy_8gaussians", "eight_gaussians", noise=0.02, scale=1.414, pool_size=7)
    roll = ToyDataset("toy_swissroll", "swiss_roll", noise=0.25, scale=7.5, pool_size=1001)  # no centres to split over
    assert roll.pool.shape == (1001, 2)


def test_swiss_roll_radius_tracks_its_angle():
    torch.manual_seed(0)
    points = ToyDataset("toy_swissroll", "swiss_roll", noise=0.0, scale=7.5).sample(5000)
    # Without noise, (x, z) = t (cos t, sin t) / 7.5 with t in [1.5 pi, 4.5 pi].
    radius = points.norm(dim=1) * 7.5
    assert radius.min() >= 1.5 * math.pi - 1e-4 and radius.max() <= 4.5 * math.pi + 1e-4
    on_the_spiral = radius[:, None] * torch.stack([torch.cos(radius), torch.sin(radius)], dim=1)
    assert torch.allclose(points * 7.5, on_the_spiral, atol=1e-4)


def test_sampling_with_a_generator_is_reproducible_and_leaves_the_global_stream():
    data = ToyDataset("toy_8gaussians", "eight_gaussians", noise=0.02, scale=1.414)
    torch.manual_seed(1)
    before = torch.get_rng_state()
    a = data.sample(100, generator=torch.Generator().manual_seed(5))
    b = data.sample(100, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), before)


def toy_context(fake: torch.Tensor, real: torch.Tensor) -> tuple[EvalContext, torch.Tensor]:
    data = ToyDataset("toy_8gaussians", "eight_gaussians", noise=0.02, scale=1.414)
    return EvalContext(len(fake), real, data, cfg=None), fake  # the toy metrics read no settings


def test_modes_and_high_quality_fraction():
    data = ToyDataset("toy_8gaussians", "eight_gaussians", noise=0.02, scale=1.414)
    on_every_centre = data.centres.repeat(100, 1)
    on_one_centre = data.centres[:1].repeat(800, 1)
    half_off = torch.cat([on_every_centre[:400], on_every_centre[400:] + 1.0])
    assert modes_and_quality(*toy_context(on_every_centre, on_every_centre)) == {"modes": 8.0, "hq_fraction": 1.0}
    assert modes_and_quality(*toy_context(on_one_centre, on_every_centre)) == {"modes": 1.0, "hq_fraction": 1.0}
    # 3 standard deviations of a mode are 3 * 0.02 / 1.414 = 0.042: just inside and just outside.
    near = data.centres.repeat(100, 1) + torch.tensor([0.041, 0.0])
    far = data.centres.repeat(100, 1) + torch.tensor([0.044, 0.0])
    assert modes_and_quality(*toy_context(near, near))["hq_fraction"] == 1.0
    assert modes_and_quality(*toy_context(far, far))["hq_fraction"] == 0.0
    assert modes_and_quality(*toy_context(half_off, on_every_centre))["hq_fraction"] == 0.5


def test_w1_of_a_translated_point_set_is_the_shift():
    real = torch.randn(500, 2)
    assert wasserstein1(*toy_context(real + torch.tensor([0.3, -0.4]), real))["w1"] == pytest.approx(0.5)
    assert wasserstein1(*toy_context(real, real))["w1"] == pytest.approx(0.0, abs=1e-6)


def test_protocol_names_carry_the_sample_count():
    assert protocol_name("cls_fid", 5000) == "cls_fid_5k"
    assert protocol_name("is", 50_000) == "is_50k"
    assert protocol_name("cls_is", 2500) == "cls_is_2500"


def test_sampling_mode_uses_batch_statistics_without_updating_the_running_ones():
    generator = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))
    with torch.no_grad():
        generator(torch.randn(64, 4) * 3 + 1)  # training mode: running statistics move off 0 and 1
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    x = torch.randn(16, 4)
    with torch.no_grad():
        hidden = generator[0](x)
        norm = generator[1]
        by_batch = (hidden - hidden.mean(0)) / (hidden.var(0, unbiased=False) + norm.eps).sqrt() * norm.weight + norm.bias
        by_running = (hidden - norm.running_mean) / (norm.running_var + norm.eps).sqrt() * norm.weight + norm.bias
        with sampling_mode(generator, batch_stats=True):
            torch.testing.assert_close(generator(x), by_batch)
        with sampling_mode(generator, batch_stats=False):
            torch.testing.assert_close(generator(x), by_running)
    assert all(torch.equal(before[k], v) for k, v in generator.state_dict().items())
    assert generator.training and generator[1].training and generator[1].track_running_stats


def test_an_image_grid_is_torchvisions_under_a_label(tmp_path):
    import numpy as np
    from PIL import Image
    from torchvision.utils import save_image

    from wgan.figures import LABEL_HEIGHT, image_grid

    images = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    labelled = np.asarray(Image.open(image_grid(images, tmp_path / "grid.png", "wgan_gp-dcgan-cifar10-s0, iteration 7")))
    save_image(images, tmp_path / "plain.png", nrow=4, normalize=True, value_range=(-1, 1))
    plain = np.asarray(Image.open(tmp_path / "plain.png"))
    assert labelled.shape == (plain.shape[0] + LABEL_HEIGHT, plain.shape[1], 3)
    assert np.array_equal(labelled[LABEL_HEIGHT:], plain)  # the samples exactly as torchvision saves them
    strip = labelled[:LABEL_HEIGHT]
    assert (strip < 128).any() and (strip == 255).mean() > 0.5  # black text on white


@pytest.mark.slow
def test_appendix_d_under_the_penalty_tf1_elu_diverges_where_elu_and_softplus_train(train_tiny, tmp_path):
    """The study's toy setting (sweeps/appendix_d_toy.yaml), 150 iterations at the constant learning
    rate 2e-3: the penalty of TensorFlow's ELU grows past 1,000 (9e5 here on 2026-12-02), the
    correct ELU's and softplus's stay near 1, as the critic keeps its gradient norms near 1."""
    last_penalty = {}
    for name in ("elu_tf1", "elu", "softplus"):
        run_dir = tmp_path / name
        train_tiny("sweeps=appendix_d_toy", f"arch.nonlinearity={name}", "arch.width=128", "train.batch_size=256",
                   "train.iterations=150", "train.lr_decay=constant", "train.log_every=10", "eval.every=150",
                   "ckpt.every=150", "seed=0", run_dir=run_dir)
        rows = [json.loads(line) for line in RunFiles(run_dir).train_stats.read_text().splitlines()]
        last_penalty[name] = rows[-1]["penalty"]
    assert last_penalty["elu_tf1"] > 1000 and last_penalty["elu"] < 10 and last_penalty["softplus"] < 10, last_penalty
