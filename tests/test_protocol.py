"""The paper's protocol, setting for setting: what each method preset and each study file of
sweeps/ composes to, against the official scripts (wgan-gp-protocol.md and the script named)."""
from __future__ import annotations

import pytest
import torch

from helpers import TINY
from wgan.config import compose_config, method_name
from wgan.metrics import to_uint8


@pytest.mark.parametrize("method,n_critic,label", [
    ("wgan_gp", 5, "wgan_gp"), ("wgan_clip", 5, "wgan_clip"),
    ("dcgan", 1, "gan"), ("lsgan", 1, "lsgan"),  # DISC_ITERS = 1 for dcgan/lsgan in gan_64x64.py, gan_cifar.py
    ("wgan_gp_beta05", 5, "wgan_gp"), ("wgan_gp_rmsprop", 5, "wgan_gp_rmsprop"),
])
@pytest.mark.slow
def test_each_method_preset_trains_its_own_number_of_critic_steps(method, n_critic, label):
    cfg = compose_config([f"method={method}"])
    assert cfg.train.n_critic == n_critic
    assert method_name(cfg) == label
    assert compose_config([f"method={method}", "train.n_critic=3"]).train.n_critic == 3  # the command line wins


@pytest.mark.slow
@pytest.mark.parametrize("study", ["robustness_paper", "robustness_toy", "robustness_fmnist"])
def test_the_robustness_studies_give_the_gan_one_discriminator_step(study):
    assert compose_config([f"sweeps={study}", "method=dcgan"]).train.n_critic == 1
    assert compose_config([f"sweeps={study}", "method=wgan_gp"]).train.n_critic == 5


def optimizer(cfg, net="critic"):
    node = cfg.optimizer[net]
    return node._target_.rsplit(".", 1)[-1], node.lr, list(node.get("betas", []))


def test_figure2_is_200k_iterations_with_appendix_e_optimizers():
    settings = {m: compose_config(["sweeps=figure2", f"method={m}", "arch=dcgan"])
                for m in ("wgan_gp_beta05", "wgan_clip", "dcgan", "lsgan")}
    assert {cfg.train.iterations for cfg in settings.values()} == {200_000}
    assert optimizer(settings["wgan_gp_beta05"]) == ("Adam", 1e-4, [0.5, 0.9])
    assert optimizer(settings["dcgan"]) == ("Adam", 2e-4, [0.5, 0.999])
    assert optimizer(settings["wgan_clip"])[1:] == (5e-5, [])
    assert optimizer(settings["lsgan"])[1:] == (1e-4, [])
    assert [settings[m].train.n_critic for m in ("wgan_gp_beta05", "wgan_clip", "dcgan", "lsgan")] == [5, 5, 1, 1]
    assert {settings[m].dataset.resolution for m in settings} == {64}


@pytest.mark.slow
def test_figure3_is_gan_cifars_dcgan_four_ways():
    for method, opt in [("wgan_clip", (5e-5, [])), ("wgan_gp_rmsprop", (5e-5, [])),
                        ("wgan_gp_beta05", (1e-4, [0.5, 0.9])), ("dcgan", (2e-4, [0.5, 0.999]))]:
        cfg = compose_config(["sweeps=figure3", f"method={method}"])
        assert (cfg.arch.name, cfg.arch.dim, cfg.dataset.name, cfg.train.iterations) == ("dcgan", 128, "cifar10", 200_000)
        assert (cfg.eval.every, cfg.metrics.num_samples, cfg.metrics.final_num_samples) == (1000, 1000, 50_000)
        assert optimizer(cfg)[1:] == opt and optimizer(cfg, "generator")[1:] == opt
    rmsprop = compose_config(["sweeps=figure3", "method=wgan_gp_rmsprop"])
    assert (rmsprop.lipschitz.name, rmsprop.lipschitz.lam) == ("gp", 10.0)


def test_appendix_c_is_the_robustness_protocol_with_each_penalty():
    two, one = (compose_config(["sweeps=appendix_c", "method=wgan_gp", f"lipschitz={name}"])
                for name in ("gp", "gp_onesided"))
    assert (method_name(two), two.lipschitz.one_sided, method_name(one), one.lipschitz.one_sided) == \
        ("wgan_gp", False, "wgan_gp_onesided", True)
    for cfg in (two, one):
        assert (cfg.study, cfg.arch.name, cfg.arch.count, cfg.dataset.name, cfg.train.iterations) == \
            ("appendix_c", "random", 174, "imagenet32", 100_000)
        assert (cfg.lipschitz.lam, optimizer(cfg), cfg.train.n_critic) == (10.0, ("Adam", 1e-4, [0.0, 0.9]), 5)


def test_appendix_c_in_miniature_is_the_toy_robustness_protocol_with_each_penalty():
    toy = compose_config(["sweeps=robustness_toy", "method=wgan_gp"])
    two, one = (compose_config(["sweeps=appendix_c_toy", "method=wgan_gp", f"lipschitz={name}"])
                for name in ("gp", "gp_onesided"))
    assert (method_name(two), two.lipschitz.one_sided, method_name(one), one.lipschitz.one_sided) == \
        ("wgan_gp", False, "wgan_gp_onesided", True)
    for cfg in (two, one):
        assert cfg.study == "appendix_c_toy"
        for key in ("arch", "dataset", "train", "eval", "optimizer"):
            assert cfg[key] == toy[key], key
        assert cfg.lipschitz.lam == toy.lipschitz.lam


def test_appendix_d_labels_each_job_by_its_nonlinearity():
    for name in ("elu_tf1", "elu", "softplus"):
        cfg = compose_config(["sweeps=appendix_d_toy", f"arch.nonlinearity={name}"])
        assert (method_name(cfg), cfg.arch.name, cfg.lipschitz.name) == (f"gp_{name}", "mlp", "gp")
        cfg = compose_config(["sweeps=appendix_d_fmnist", f"arch.d_nonlinearity={name}"])
        assert (method_name(cfg), cfg.arch.name, cfg.arch.g_nonlinearity.value, cfg.dataset.name) == \
            (f"gp_{name}", "dcgan", "relu", "fashion_mnist")


def test_appendix_d_on_images_trains_with_table_1s_recipe():
    cfg = compose_config(["sweeps=appendix_d_fmnist"])
    assert (cfg.lipschitz.lam, optimizer(cfg), cfg.train.n_critic, list(cfg.metrics.names)) == \
        (10.0, ("Adam", 1e-4, [0.0, 0.9]), 5, ["classifier"])


def test_table3_is_gan_cifar_resnets_recipe():
    cfg = compose_config(["sweeps=table3_resnet"])
    assert (cfg.arch.name, cfg.dataset.name, method_name(cfg)) == ("resnet_cifar", "cifar10", "wgan_gp")
    assert optimizer(cfg) == optimizer(cfg, "generator") == ("Adam", 2e-4, [0.0, 0.9])
    assert (cfg.train.iterations, cfg.train.lr_decay.value, cfg.train.n_critic) == (100_000, "linear", 5)
    assert (cfg.train.batch_size, cfg.train.generator_batch_size) == (64, 128)
    assert cfg.dataset.dequantize is True and cfg.lipschitz.lam == 10.0
    assert cfg.metrics.final_num_samples == 50_000


def test_generated_images_are_quantized_as_the_official_scripts_do():
    """((x + 1) * (255.99 / 2)).astype('int32'): 256 equal bins over [-1, 1]."""
    x = torch.tensor([-1.0, -0.999, 0.0, 0.5, 0.99, 1.0])
    expected = [int((v + 1) * (255.99 / 2)) for v in x.tolist()]
    assert to_uint8(x).tolist() == expected == [0, 0, 127, 191, 254, 255]
    real = torch.arange(256, dtype=torch.float32) / 255 * 2 - 1  # how real uint8 pixels are scaled
    assert to_uint8(real).tolist() == list(range(256))


def test_the_generator_step_draws_its_own_batch_size(tmp_path):
    """gan_cifar_resnet.py's generator batch is twice the critic's (GEN_BS_MULTIPLE = 2)."""
    from wgan.files import RunFiles
    from wgan.train import Trainer

    trainer = Trainer(compose_config([*TINY, "train.generator_batch_size=7"]), RunFiles(tmp_path))
    batches: list[int] = []
    trainer.parts.generator.register_forward_hook(lambda module, args, out: batches.append(len(out)))
    trainer.iteration()
    assert batches == [32] * 5 + [7]  # five critic steps of train.batch_size, then the generator's


def test_robustness_paper_is_the_studys_data_and_appendix_b_weight_decay():
    for method in ("wgan_gp", "dcgan"):
        cfg = compose_config(["sweeps=robustness_paper", f"method={method}"])
        assert cfg.dataset.layout.value == "oord"  # van den Oord's train_32x32 PNGs, as the study script
        assert cfg.optimizer.normalized_critic_weight_decay == 1e-3
        assert (cfg.train.iterations, cfg.metrics.final_num_samples) == (100_000, 50_000)


@pytest.mark.parametrize("method,norm", [("wgan_gp", torch.nn.GroupNorm), ("dcgan", torch.nn.BatchNorm1d)])
def test_the_weight_decay_follows_the_drawn_critic(tmp_path, method, norm):
    """A random architecture's critic is normalized or not; only a normalized one is decayed, and
    only its weight layers' weights."""
    from wgan.arch.random import RandomArch
    from wgan.files import RunFiles
    from wgan.train import Trainer

    drawn = {RandomArch("random", seed, 2, {"norm": [True, False]}, {"norm": [True, False]}).choices["d_norm"]: seed
             for seed in range(10)}
    for normalized, seed in drawn.items():
        tiny = [o for o in TINY if not o.startswith("arch.")] + ["arch.g.width=[32]", "arch.d.width=[32]"]
        cfg = compose_config([*tiny, "arch=random", f"arch.seed={seed}", f"method={method}",
                              "optimizer.normalized_critic_weight_decay=1e-3"])
        trainer = Trainer(cfg, RunFiles(tmp_path / str(seed)))
        assert any(isinstance(m, norm) for m in trainer.parts.critic.modules()) == normalized
        decays = [(group["weight_decay"], len(group["params"])) for group in trainer.parts.opt_d.param_groups]
        linears = [m for m in trainer.parts.critic.modules() if isinstance(m, torch.nn.Linear)]
        assert decays == ([(1e-3, len(linears)), (0.0, len(list(trainer.parts.critic.parameters())) - len(linears))]
                          if normalized else [(0.0, len(list(trainer.parts.critic.parameters())))])
        assert all(group["weight_decay"] == 0 for group in trainer.parts.opt_g.param_groups)
