"""The benchmark compares equal math: its reference loop, from the project's initial weights and
the same random draws, ends one iteration with the project's critic loss and parameters; and its
analytic FLOP count of the toy critic step agrees with what torch executes. The protocol's cost
benchmark times each study's own jobs on stand-in images."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from wgan.config import compose_config, validate

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_bench(name: str = "bench"):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # a benchmark's: composes each study's job kinds twice, seconds per study
@pytest.mark.parametrize("study", ["robustness_paper", "figure2", "figure3", "table3_resnet"])
def test_the_protocol_cost_times_each_studys_jobs_on_stand_in_images_of_its_size(study, tmp_path):
    """The study's settings (a sweeps/ file sets its data's options too: imagenet32's layout) with
    only the data replaced: random images of its resolution, dequantized where the study's are."""
    cost = load_bench("protocol_cost")
    jobs = cost.job_configs(study, architectures=2, device="cpu", root=tmp_path)
    kinds, _ = cost.STUDIES[study]
    study_data = compose_config([f"sweeps={study}"]).dataset
    assert len(jobs) == len(kinds) * (2 if study == "robustness_paper" else 1)
    for kind, cfg in jobs:
        own = compose_config([f"sweeps={study}", *kind])
        for key in ("arch", "loss", "lipschitz", "optimizer", "train", "study"):
            assert cfg[key] == own[key], (kind, key)
        assert (cfg.dataset.name, cfg.dataset.resolution, cfg.dataset.dequantize) == \
            ("imagefolder", study_data.resolution, study_data.get("dequantize", False))
        validate(cfg)


@pytest.mark.slow
def test_reference_loop_matches_the_project_after_one_iteration(tmp_path):
    bench = load_bench()
    cases = {
        "toy": ["arch=mlp", "arch.width=32", "train.batch_size=32", "train.n_critic=2"],
        "dcgan": ["dataset=synthetic", "arch=dcgan", "arch.dim=8", "train.batch_size=4", "train.n_critic=2"],
    }
    for name, overrides in cases.items():
        for method in bench.METHODS.values():
            trainer = bench.make_trainer([*overrides, method], "cpu", tmp_path)
            reference = bench.ReferenceLoop(trainer)
            before = [p.detach().clone() for p in trainer.parts.critic.parameters()]
            ours, theirs = bench.one_iteration_each(trainer, reference)
            assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-9), (name, method)
            for ours_net, their_net in ((trainer.parts.critic, reference.D), (trainer.parts.generator, reference.G)):
                for mine, other in zip(ours_net.state_dict().values(), their_net.state_dict().values()):
                    torch.testing.assert_close(mine, other, rtol=1e-6, atol=1e-8, msg=f"{name} {method}")
            assert any(not torch.equal(a, b) for a, b in zip(before, trainer.parts.critic.parameters()))  # it trained
            if name == "toy" and method == bench.METHODS["WGAN-GP"]:  # the peak row's FLOP count, checked by torch's
                counted = bench.critic_step_flops(trainer.parts.critic, trainer.parts.generator, 32)
                assert bench.executed_flops(trainer.critic_step) == counted
                # ...and the reference loop keeps torch's own ReLU, as public code has it.
                activations = {type(m) for m in reference.D.modules() if not list(m.children())} - {torch.nn.Linear}
                assert activations == {torch.nn.ReLU, torch.nn.Flatten}
