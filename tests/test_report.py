"""`python -m wgan.report`: the robustness table from hand-made results.json files (no training)."""
from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from wgan.logger import FIGURE_JOB_TYPE
from wgan.report import (
    build_report,
    default_metric,
    job_from_results,
    main,
    records_from_dir,
    records_from_wandb,
    to_markdown,
)

GAN, WGAN = "gan", "wgan_gp"
# arch_seed -> method -> is_50k ("diverged", "crashed", "no score" or absent = missing). The four
# architectures scored for both methods are 0, 1, 2 and 4.
STUDY = {
    0: {GAN: 2.2, WGAN: 6.1},
    1: {GAN: 4.5, WGAN: 3.9},
    2: {GAN: "diverged", WGAN: 7.3},
    3: {GAN: 1.2, WGAN: "crashed"},
    4: {GAN: 3.0, WGAN: 3.1},  # 3.0 does not succeed at 3.0: success is strictly greater
    5: {GAN: 5.5},  # wgan_gp missing
    6: {GAN: 2.0, WGAN: "no score"},
}


def results(method: str, arch_seed: int, outcome, study: str = "robustness_toy") -> dict:
    status = outcome if outcome in ("diverged", "crashed") else "complete"
    final = {"step": 800} if outcome == "no score" else {"step": 800, "is_50k": outcome, "is_std_50k": 0.05,
                                                           "is_5k": 1.0, "fid_50k": 40.0}
    if status == "diverged":
        final = {"step": 120, "is_50k": 8.5}  # a score before diverging must not count
    record = {"status": status, "step": 800, "iterations": 800, "method": method, "arch": "random",
              "arch_seed": arch_seed, "dataset": "imagenet32", "seed": 0, "study": study,
              "final": final if status != "crashed" else {}, "best": final, "unavailable": {}, "wall_time": 1.0}
    if status == "diverged":
        record.update(diverged_at=123, reason="loss is nan")
    if status == "crashed":
        record["traceback"] = 'Traceback (most recent call last):\n  File "x.py"\nRuntimeError: CUDA out of memory\n'
    return record


def write_job(job_dir: Path, record=None, text: str | None = None) -> Path:
    """A job directory as a Hydra multirun leaves it: config.yaml, .hydra/, and maybe results.json."""
    (job_dir / ".hydra").mkdir(parents=True)
    (job_dir / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (job_dir / "config.yaml").write_text("seed: 0\n")
    if record is not None or text is not None:
        (job_dir / "results.json").write_text(text if text is not None else json.dumps(record))
    return job_dir


def all_records(study: str = "robustness_toy") -> list[tuple[str, dict]]:
    return [(f"{method}-{seed}", results(method, seed, outcome, study))
            for seed, by_method in STUDY.items() for method, outcome in by_method.items()]


@pytest.fixture
def study_dir(tmp_path) -> Path:
    return make_study(tmp_path / "robustness_toy")


def make_study(root: Path, study: str = "robustness_toy") -> Path:
    for index, (name, record) in enumerate(all_records(study)):
        depth = "2026-01-01_00-00-00" if index % 2 else "resumed/2026-01-02_00-00-00"  # jobs at any depth
        job = write_job(root / depth / name, record)
        (job / "wandb" / "run-1" / "files").mkdir(parents=True)  # W&B's own config.yaml is not another job
        (job / "wandb" / "run-1" / "files" / "config.yaml").write_text("a: 1\n")
    write_job(root / "2026-01-01_00-00-00" / "killed")  # config only: killed or still running
    write_job(root / "2026-01-01_00-00-00" / "truncated", text='{"status": "complete", "fin')
    return root


def test_two_method_table_counts_paired_architectures_only(study_dir):
    report = build_report(records_from_dir(study_dir))
    assert report.metric == "is_50k"
    assert report.thresholds == [1.0 + 0.5 * i for i in range(17)]
    assert report.pair == (GAN, WGAN) and report.paired == 4
    # only gan, only wgan_gp, both succeeded, both failed
    assert report.pair_counts[1.0] == (0, 1, 3, 0)
    assert report.pair_counts[3.0] == (0, 3, 1, 0)
    assert report.pair_counts[4.0] == (1, 2, 0, 1)
    assert report.pair_counts[4.5] == (0, 2, 0, 2)
    assert report.pair_counts[8.0] == (0, 0, 0, 4)  # the diverged gan job's 8.5 is not a success
    # wgan_gp higher on architectures 0, 2 (gan diverged) and 4; gan on 1. Two-sided sign test:
    # P(X <= 1) + P(X >= 3) for X ~ Binomial(4, 1/2) = (1 + 4 + 4 + 1) / 16.
    assert (report.sign.a_better, report.sign.b_better, report.sign.ties) == (1, 3, 0)
    assert report.sign.p_value == pytest.approx(10 / 16)


def test_per_method_successes_and_lists(study_dir):
    report = build_report(records_from_dir(study_dir))
    assert report.scored == {GAN: 7, WGAN: 4}
    assert report.successes[GAN][1.0] == 6 and report.successes[WGAN][1.0] == 4
    assert report.successes[GAN][3.0] == 2 and report.successes[WGAN][3.0] == 4
    assert report.successes[GAN][5.0] == 1 and report.successes[WGAN][5.0] == 2
    assert dict(report.status_counts) == {"complete": 11, "diverged": 1, "crashed": 1, "unfinished": 2}
    assert [(job.where, job.error) for job in report.crashed] == [
        ("2026-01-01_00-00-00/wgan_gp-3", "RuntimeError: CUDA out of memory")]
    assert [job.where for job in report.unfinished] == ["2026-01-01_00-00-00/killed", "2026-01-01_00-00-00/truncated"]
    assert report.missing == [(("imagenet32", "random", 5, 0), WGAN)]
    assert [job.where for job in report.no_score] == ["resumed/2026-01-02_00-00-00/wgan_gp-6"]
    assert not report.paper


def test_markdown_and_files(study_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(study_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| min is_50k (higher is better) | only gan | only wgan_gp | both succeeded | both failed |" in printed
    assert "| 4.0 | 1 | 2 | 0 | 1 |" in printed
    assert "| 3.0 | 2/7 | 4/4 |" in printed
    assert "Success: final `is_50k` > threshold (higher is better)" in printed
    assert "11 complete, 1 diverged (fail at every threshold), 1 crashed, 2 unfinished; 1 missing" in printed
    assert "- `2026-01-01_00-00-00/wgan_gp-3`: RuntimeError: CUDA out of memory" in printed
    assert "- dataset=imagenet32, arch=random, arch_seed=5, seed=0: wgan_gp" in printed
    assert (out / "report.md").read_text() == printed
    with open(out / "report.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["threshold", "column", "count", "out_of"]
    assert len(rows) == 1 + 17 * 6  # four paired columns and two methods per threshold
    assert ["4.0", "only gan", "1", "4"] in rows and ["4.0", "both failed", "1", "4"] in rows
    assert ["3.0", "gan", "2", "7"] in rows and ["9.0", "wgan_gp", "0", "4"] in rows
    assert (out / "success.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (study_dir / "report.md").exists()  # nothing written outside --out


def test_options_metric_thresholds_methods(study_dir, tmp_path, capsys):
    argv = [str(study_dir), "--metric", "is_50k", "--thresholds", "3,4.25", "--methods", "wgan_gp,gan"]
    assert main(argv + ["--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert "| min is_50k (higher is better) | only wgan_gp | only gan | both succeeded | both failed |" in printed
    assert "| 3.0 | 3 | 0 | 1 | 0 |" in printed and "| 4.25 | 2 | 1 | 0 | 1 |" in printed
    assert main([str(study_dir), "--metric", "fid_50k"]) == 2
    assert "--thresholds is required for metric fid_50k" in capsys.readouterr().err
    assert main([str(study_dir), "--methods", "gan,lsgan"]) == 2
    assert "--methods needs two of the study's methods: gan, wgan_gp" in capsys.readouterr().err
    assert main([str(study_dir), "--methods", "gan,gan"]) == 2


def test_default_metric_choice():
    def jobs(*finals):
        return [job_from_results(str(i), {"status": "complete", "method": GAN, "arch_seed": i, "final": final})
                for i, final in enumerate(finals)]

    assert default_metric(jobs({"is_5k": 6.0, "is_std_5k": 0.1}, {"is_50k": 6.1, "fid_50k": 40.0})) == "is_50k"
    assert default_metric(jobs({"cls_accuracy": 0.91, "cls_is_5k": 7.2, "cls_fid_5k": 12.3})) == "cls_is_5k"
    assert default_metric(jobs({"modes": 8.0, "hq_fraction": 0.86, "w1": 0.07})) == "hq_fraction"
    report = build_report(jobs({"hq_fraction": 0.86}, {"hq_fraction": 0.25}))
    assert report.thresholds == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    assert report.pair is None and report.successes[GAN][0.2] == 2 and report.successes[GAN][0.3] == 1


def test_a_metric_whose_lower_values_are_better_counts_values_below_the_threshold(tmp_path, capsys):
    """W1 (like FID and KID) is better when lower, as the metric registry declares: a job succeeds
    below the threshold, a diverged job still fails at every threshold, and the header says so."""
    w1 = {0: (0.05, 0.02), 1: (0.3, 0.08), 2: ("diverged", 0.15), 3: (0.1, 0.1)}  # arch_seed -> (gan, wgan_gp)
    for seed, outcomes in w1.items():
        for method, outcome in zip((GAN, WGAN), outcomes):
            record = results(method, seed, 1.0)
            record["final"] = {"step": 800, "w1": outcome, "hq_fraction": 0.5}
            if outcome == "diverged":
                record.update(status="diverged", final={"step": 120, "w1": 0.001})  # its last w1 must not count
            write_job(tmp_path / "study" / f"{method}-{seed}", record)
    assert main([str(tmp_path / "study"), "--metric", "w1", "--thresholds", "0.06,0.1,0.2"]) == 0
    printed = capsys.readouterr().out
    assert "Success: final `w1` < threshold (lower is better)" in printed
    assert "| max w1 (lower is better) | only gan | only wgan_gp | both succeeded | both failed |" in printed
    # w1 < 0.06: gan 0.05 (seed 0); wgan_gp 0.02. < 0.1: gan 0.05; wgan_gp 0.02, 0.08 (0.1 is not below 0.1)
    assert "| 0.06 | 0 | 0 | 1 | 3 |" in printed and "| 0.1 | 0 | 1 | 1 | 2 |" in printed
    assert "| 0.2 | 0 | 2 | 2 | 0 |" in printed
    assert "| max w1 (lower is better) | gan | wgan_gp |" in printed and "| 0.2 | 2/4 | 4/4 |" in printed
    assert main([str(tmp_path / "study"), "--metric", "step", "--thresholds", "1"]) == 2
    assert ("--metric step: no metric of wgan.metrics declares it, so whether higher or lower is better is unknown"
            in capsys.readouterr().err)


@pytest.mark.parametrize("key, better", [("w1", "lower"), ("fid_50k", "lower"), ("kid_5k", "lower"),
                                         ("cls_fid_5k", "lower"), ("is_std_50k", "lower"), ("is_50k", "higher"),
                                         ("cls_is_5k", "higher"), ("hq_fraction", "higher"), ("modes", "higher")])
def test_the_direction_of_each_metric_is_the_registrys(key, better):
    from wgan.metrics import direction

    assert direction(key).value == better


def test_paper_columns_for_robustness_paper(tmp_path, capsys):
    study = make_study(tmp_path / "robustness_paper", study="robustness_paper")
    assert main([str(study), "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert "| both failed | paper: only gan | paper: only wgan_gp | paper: both succeeded | paper: both failed |" in printed
    assert "| 1.0 | 0 | 1 | 3 | 0 | 0 | 8 | 192 | 0 |" in printed
    assert "| 7.5 | 0 | 0 | 0 | 4 | 2 | 67 | 3 | 128 |" in printed


class WandbSummary:
    """Like wandb's HTTPSummary: keys() and [] only, nested dicts included."""

    def __init__(self, values: dict):
        self._values = values

    def keys(self):
        return self._values.keys()

    def __getitem__(self, key):
        value = self._values[key]
        return WandbSummary(value) if isinstance(value, dict) else value


def test_wandb_adapter_gives_the_same_tables(study_dir):
    runs = [SimpleNamespace(name=name, state="finished" if record["status"] == "complete" else record["status"],
                            summary=WandbSummary({k: v for k, v in record.items() if k != "traceback"}))
            for name, record in all_records()]
    runs.append(SimpleNamespace(name="gan-9", state="running", summary=WandbSummary({"_step": 3})))
    # A figure drawn from the study, logged to its group (wgan.logger.log_figure_run), is no job.
    runs.append(SimpleNamespace(name="report-is_50k", state="finished", job_type=FIGURE_JOB_TYPE,
                                summary=WandbSummary({"metric": "is_50k"})))
    from_wandb = build_report(records_from_wandb(runs))
    from_files = build_report(records_from_dir(study_dir))
    for table in ("metric", "thresholds", "pair", "paired", "pair_counts", "successes", "scored", "missing"):
        assert getattr(from_wandb, table) == getattr(from_files, table), table
    assert [(job.where, job.error) for job in from_wandb.crashed] == [("wgan_gp-3", "no traceback recorded")]
    assert [job.where for job in from_wandb.unfinished] == ["gan-9 (W&B state: running)"]


@pytest.mark.slow
def test_cli_errors_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "no jobs under" in capsys.readouterr().err
    assert main([str(tmp_path / "nowhere")]) == 2
    assert f"study directory {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
    done = subprocess.run([sys.executable, "-m", "wgan.report", str(tmp_path / "empty")], capture_output=True, text=True)
    assert done.returncode == 2
    assert "looked for directories holding results.json, config.yaml or .hydra/" in done.stderr
    assert not list((tmp_path / "empty").iterdir())


def test_an_interrupted_run_is_an_unfinished_job_not_an_outcome():
    interrupted = {"status": "interrupted", "step": 10, "signal": "SIGTERM", "stopped_in": "iteration 10",
                   "method": "wgan_gp", "final": {}}
    assert job_from_results("a", interrupted).status == "unfinished"
    assert job_from_results("b", {**interrupted, "status": "crashed", "traceback": "E: x"}).status == "crashed"


def test_jobs_are_scored_by_their_best_values_with_scores_best(tmp_path, capsys):
    """Two architectures whose final IS is below 3 but whose best evaluation was above it: the
    final table counts no success, the best one counts both."""
    for arch_seed, (final, best) in enumerate([(2.0, 3.5), (2.5, 4.0)]):
        for method in (GAN, WGAN):
            record = results(method, arch_seed, final)
            record["best"] = {**record["final"], "is_50k": best}
            write_job(tmp_path / f"{method}-{arch_seed}", record)
    assert main([str(tmp_path), "--thresholds", "3", "--out", str(tmp_path / "final")]) == 0
    assert "Success: final `is_50k` > threshold" in capsys.readouterr().out
    assert "| 3.0 | 0 | 0 | 0 | 2 |" in (tmp_path / "final" / "report.md").read_text()
    assert main([str(tmp_path), "--thresholds", "3", "--scores", "best", "--out", str(tmp_path / "best")]) == 0
    printed = capsys.readouterr().out
    assert "Success: best `is_50k` > threshold" in printed and "| 3.0 | 0 | 0 | 2 | 0 |" in printed
    with pytest.raises(SystemExit) as exit:
        main([str(tmp_path), "--scores", "last"])
    assert exit.value.code == 2 and "argument --scores: invalid Scores value: 'last'" in capsys.readouterr().err


def test_counts_of_one_are_singular():
    one_pair = [job_from_results(f"{method}-0", results(method, 0, 3.0)) for method in (GAN, WGAN)]
    assert "## gan vs wgan_gp (1 architecture scored for both)" in to_markdown(build_report(one_pair))
    pairs = [job_from_results(f"{method}-{seed}", results(method, seed, 3.0)) for seed in (0, 1) for method in (GAN, WGAN)]
    assert "## gan vs wgan_gp (2 architectures scored for both)" in to_markdown(build_report(pairs))


TWO, ONE = "wgan_gp", "wgan_gp_onesided"
# arch_seed -> (two-sided, one-sided) is_50k: two-sided higher on 0-4, one-sided on 5, ties on 6
# (equal scores) and 7 (both diverged); 8 has no one-sided job and is not paired.
APPENDIX_C = {0: (6.0, 5.0), 1: (4.0, 3.9), 2: (7.0, "diverged"), 3: (2.5, 2.0), 4: (5.5, 5.4), 5: (3.0, 3.5),
              6: (4.2, 4.2), 7: ("diverged", "diverged"), 8: (6.0, None)}


def test_sign_test_of_one_against_two_sided_penalty_beside_appendix_c(tmp_path, capsys):
    for seed, scores in APPENDIX_C.items():
        for method, outcome in zip((TWO, ONE), scores):
            if outcome is not None:
                write_job(tmp_path / "appendix_c" / f"{method}-{seed}", results(method, seed, outcome, "appendix_c"))
    report = build_report(records_from_dir(tmp_path / "appendix_c"))
    assert report.pair == (TWO, ONE) and report.paired == 8
    assert (report.sign.a_better, report.sign.b_better, report.sign.ties) == (5, 1, 2)
    # Ties left out: n = 6; P(X <= 1) + P(X >= 5) for X ~ Binomial(6, 1/2) = 2 (1 + 6) / 64.
    assert report.sign.p_value == pytest.approx(14 / 64)
    assert main([str(tmp_path / "appendix_c")]) == 0
    printed = capsys.readouterr().out
    assert ("wgan_gp scored higher in 5 of 8 architectures, wgan_gp_onesided in 1; exact two-sided sign test "
            "p = 0.219 (2 tied, left out of the test; a diverged job loses to any scored one).") in printed
    # The paper's: 100 against 77, p = 2 P(X >= 100) for X ~ Binomial(177, 1/2).
    paper = 2 * sum(math.comb(177, k) for k in range(100, 178)) / 2**177
    assert f"wgan_gp scored higher in 100 of 174 architectures, wgan_gp_onesided in 77; exact two-sided sign test p = {paper:.3g}" in printed
    assert "p = 0.0979" in printed and "not significant at p < 0.05" in printed


def test_a_sign_test_with_every_pair_tied_has_p_one():
    jobs = [job_from_results(f"{m}-{s}", results(m, s, 3.0)) for s in range(3) for m in (GAN, WGAN)]
    report = build_report(jobs)
    assert (report.sign.a_better, report.sign.b_better, report.sign.ties, report.sign.p_value) == (0, 0, 3, 1.0)
