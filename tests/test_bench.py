"""The benchmark compares equal math: its reference loop, from the project's initial weights and
the same random draws, ends one iteration with the project's critic loss and parameters; and its
analytic FLOP count of the toy critic step agrees with what torch executes."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


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
            before = [p.detach().clone() for p in trainer.critic.parameters()]
            ours, theirs = bench.one_iteration_each(trainer, reference)
            assert ours == pytest.approx(theirs, rel=1e-6, abs=1e-9), (name, method)
            for ours_net, their_net in ((trainer.critic, reference.D), (trainer.generator, reference.G)):
                for mine, other in zip(ours_net.state_dict().values(), their_net.state_dict().values()):
                    torch.testing.assert_close(mine, other, rtol=1e-6, atol=1e-8, msg=f"{name} {method}")
            assert any(not torch.equal(a, b) for a, b in zip(before, trainer.critic.parameters()))  # it trained
            if name == "toy" and method == bench.METHODS["WGAN-GP"]:  # the peak row's FLOP count, checked by torch's
                counted = bench.critic_step_flops(trainer.critic, trainer.generator, 32)
                assert bench.executed_flops(trainer.critic_step) == counted
                # ...and the reference loop keeps torch's own ReLU, as public code has it.
                activations = {type(m) for m in reference.D.modules() if not list(m.children())} - {torch.nn.Linear}
                assert activations == {torch.nn.ReLU, torch.nn.Flatten}
