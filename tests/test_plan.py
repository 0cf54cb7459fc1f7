"""`python -m wgan.plan`: a study's projected cost, from timed iterations of each job.

How close the projection comes to a study's measured wall time is a benchmark, not a test
(timing is noisy on a shared machine): `python benchmarks/plan_accuracy.py`.
"""
from __future__ import annotations

import json

import pytest

from wgan.config import compose_config
from wgan import plan
from wgan.files import RunFiles
from wgan.study import job_dir_name
from wgan.train import Trainer, run

# Two jobs of the toy study (one architecture under its two methods), each a second or two.
STUDY = ["sweeps=robustness_toy", "arch.count=1", "arch.g.width=[16]", "arch.d.width=[16]", "train.iterations=20",
         "train.batch_size=32", "eval.every=10", "ckpt.every=5", "metrics.num_samples=100", "logger=none"]


def test_jobs_go_in_order_to_the_worker_that_frees_first():
    assert plan.wall_seconds([3, 1, 1, 1], 2) == 3
    assert plan.wall_seconds([1, 2, 3, 4], 2) == 6  # 1+3 on one worker, 2+4 on the other
    assert plan.wall_seconds([5, 5, 5], 1) == 15 and plan.wall_seconds([5, 5, 5], 8) == 5


def test_evaluations_left_count_every_multiple_and_the_end():
    cfg = compose_config(["train.iterations=1000", "eval.every=300"])
    assert [plan.evaluations_left(cfg, step) for step in (0, 299, 300, 650, 999, 1000)] == [4, 4, 3, 2, 1, 0]
    assert plan.evaluations_left(compose_config(["train.iterations=600", "eval.every=600"]), 0) == 1


def test_parallelism_is_the_launchers():
    assert plan.launcher_parallelism({"n_jobs": -1}, cpus=8) == 8
    assert plan.launcher_parallelism({"n_jobs": -2}, cpus=8) == 7
    assert plan.launcher_parallelism({"n_jobs": 3}, cpus=8) == 3
    assert plan.launcher_parallelism({"array_parallelism": 16}) == 16 and plan.launcher_parallelism({}) == 1


@pytest.mark.slow
def test_a_plan_measures_each_job_and_leaves_out_what_the_study_has_done(tmp_path, monkeypatch, capsys):
    sweep = tmp_path / "study"
    jobs = plan.study_jobs([*STUDY, f"hydra.sweep.dir={sweep}"])[1]
    assert [[o for o in job if o.startswith("method=")] for job in jobs] == [["method=dcgan"], ["method=wgan_gp"]] and "hydra.sweep.dir" not in str(jobs)
    # The first job is finished; the second was stopped after its checkpoint at iteration 10.
    run(compose_config(jobs[0]), sweep / job_dir_name(jobs[0]))
    original = Trainer.iteration

    def stopped_at_12(self, *args, **kwargs):
        if self.step == 12:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "iteration", stopped_at_12)
    with pytest.raises(KeyboardInterrupt):
        run(compose_config(jobs[1]), sweep / job_dir_name(jobs[1]))
    monkeypatch.setattr(Trainer, "iteration", original)
    assert RunFiles(sweep / job_dir_name(jobs[1])).load_checkpoint()["step"] == 10

    assert plan.main([*STUDY, f"hydra.sweep.dir={sweep}", "--iterations", "2", "--parallel", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    finished, interrupted = result["jobs"]
    assert finished["job"] == job_dir_name(jobs[0]) and (finished["iterations"], finished["seconds"]) == (0, 0.0)
    assert (interrupted["iterations"], interrupted["evaluations"]) == (10, 1)
    assert interrupted["iteration_s"] > 0 and interrupted["evaluation_s"] > 0 and interrupted["setup_s"] > 0
    expected = (interrupted["setup_s"] + 10 * interrupted["iteration_s"] + interrupted["final_evaluation_s"])
    assert interrupted["seconds"] == pytest.approx(expected, rel=1e-12)
    assert interrupted["final_evaluation_s"] == interrupted["evaluation_s"]  # final_num_samples: as num_samples
    assert result["device_hours"] == pytest.approx(expected / 3600, rel=1e-12)
    assert result["wall_seconds"] == pytest.approx(expected, rel=1e-12) and result["parallel"] == 2
    assert plan.main([*STUDY, f"hydra.sweep.dir={sweep}", "--iterations", "1"]) == 0
    table = capsys.readouterr().out
    assert table.startswith(f"study robustness_toy in {sweep}: 2 jobs, 1 finished already\n")
    cores = plan.launcher_parallelism({"n_jobs": -1})  # robustness_toy's joblib launcher: one job per core
    assert table.rstrip().endswith(f"wall time with {cores} job{'s' if cores > 1 else ''} at a time")

    assert plan.main([*STUDY, f"hydra.sweep.dir={sweep}", "--list"]) == 0  # measuring nothing
    assert [line.split() for line in capsys.readouterr().out.splitlines()] == [
        f"study robustness_toy in {sweep}: 2 jobs, 1 finished, 1 started, 0 not started".split(),
        [job_dir_name(jobs[0]), "finished", "(complete)"], [job_dir_name(jobs[1]), *"10 of 20 iterations".split()]]


def test_a_listing_reads_a_studys_progress_without_its_data_or_weights(tmp_path, capsys):
    """Appendix C on ImageNet 32x32 and Inception weights, neither of which this machine has."""
    assert plan.main(["sweeps=appendix_c", "arch.count=2", f"hydra.sweep.dir={tmp_path}", "--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert (listed["study"], len(listed["jobs"])) == ("appendix_c", 4)
    assert {(job["reached"], job["iterations"], job["finished"]) for job in listed["jobs"]} == {(0, 100_000, False)}


def test_a_study_with_a_bad_setting_fails_naming_the_key(capsys, caplog):
    assert plan.main(["sweeps=robustness_toy", "train.batch_size=0", "logger=none"]) == 2
    assert "train.batch_size" in caplog.text


def test_a_job_whose_checkpoints_cannot_be_read_stops_the_plan_naming_them(tmp_path, caplog, capsys):
    sweep = tmp_path / "study"
    jobs = plan.study_jobs([*STUDY, f"hydra.sweep.dir={sweep}"])[1]
    damaged = RunFiles(sweep / job_dir_name(jobs[0]))
    damaged.checkpoint.parent.mkdir(parents=True)
    damaged.checkpoint.write_bytes(b"PK\x03\x04 cut short")
    assert plan.main([*STUDY, f"hydra.sweep.dir={sweep}", "--iterations", "1"]) == 2
    assert f"no readable checkpoint: {damaged.checkpoint}" in caplog.text
    assert plan.main([*STUDY, f"hydra.sweep.dir={sweep}", "--list"]) == 0  # the listing names it and goes on
    listed = capsys.readouterr().out
    assert "2 jobs, 0 finished, 1 started, 1 not started" in listed and f"no readable checkpoint: {damaged.checkpoint}" in listed


def test_a_job_is_finished_as_training_decides_it(tmp_path):
    cfg = compose_config([*STUDY])  # train.iterations=20
    for status, step, left in (("diverged", 5, None), ("complete", 20, None), ("complete", 10, 0), ("crashed", 5, 0)):
        (tmp_path / "results.json").write_text(json.dumps({"status": status, "step": step}))
        assert plan.reached(cfg, tmp_path) == left, status  # a complete run asked for more is extended
