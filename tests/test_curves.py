"""`python -m wgan.curves`: a logged metric of two tiny real runs against iterations and time."""
from __future__ import annotations

import json

import pytest

from wandb_records import finished_run
from wgan.curves import PAPER_FINAL, YScale, collect, main, paper_finals, plot
from wgan.files import RunFiles
from wgan.report import main as report_main


@pytest.fixture
def study(train_tiny, tmp_path):
    """Two tiny toy runs of the project's own training, WGAN-GP and WGAN with clipping."""
    for method in ("wgan_gp", "wgan_clip"):
        train_tiny(f"method={method}", run_dir=tmp_path / "study" / f"method={method}")
    return tmp_path / "study"


def logged(run, name: str, metric: str) -> list[tuple[int, float, float]]:
    lines = (run / name).read_text().splitlines()
    return [(r["step"], r["elapsed"], r[metric]) for r in map(json.loads, lines)]


@pytest.mark.slow
def test_curves_plot_the_values_of_the_runs_files(study, tmp_path, capsys):
    w1 = {s.method: s for s in collect([study], "w1")}
    assert sorted(w1) == ["wgan_clip", "wgan_gp"]
    for method, series in w1.items():
        assert list(zip(series.steps, series.elapsed, series.values)) == logged(series.run, "metrics.jsonl", "w1")
        assert series.steps == [10, 20]
    # Figure 5a's negative critic loss, from the training log (train.log_every=5 in the tiny runs).
    losses = collect([study / "method=wgan_gp"], "critic_loss", negate=True)
    (loss,) = losses
    assert [(s, t, -v) for s, t, v in zip(loss.steps, loss.elapsed, loss.values)] == \
        logged(study / "method=wgan_gp", "train.jsonl", "critic_loss")
    assert loss.steps == [5, 10, 15, 20] and loss.method == "wgan_gp"

    figure = plot(losses, "critic_loss", True, {})
    by_steps, by_time = figure.axes
    assert list(by_steps.lines[0].get_xdata()) == loss.steps and list(by_steps.lines[0].get_ydata()) == loss.values
    assert list(by_time.lines[0].get_xdata()) == loss.elapsed  # seconds: the tiny runs are short
    assert by_steps.get_ylabel() == "-critic_loss" and by_time.get_xlabel() == "training time (seconds)"

    assert main([str(study), "--metric", "w1"]) == 0
    assert (study / "curves_w1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert f"wgan_gp: {study / 'method=wgan_gp'}: 2 points, last {w1['wgan_gp'].values[-1]:.4g} at iteration 20" in printed
    assert paper_finals(list(w1.values()), "w1") == {}  # the paper publishes no toy numbers

    # What the user has to fix, named (the same two runs: training them is most of the time).
    assert main([str(study), "--metric", "is_50k"]) == 2
    error = capsys.readouterr().err
    assert "no run logged 'is_50k'; logged: clip_fraction, critic_loss, generator_loss" in error and "w1" in error
    assert main([str(study / "method=wgan_gp"), str(study / "method=wgan_clip"), "--metric", "w1"]) == 2
    assert "several directories: say where the figure goes with --out PATH.png" in capsys.readouterr().err
    out = tmp_path / "both.png"
    assert main([str(study / "method=wgan_gp"), str(study / "method=wgan_clip"), "--metric", "w1", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_the_papers_final_numbers_are_drawn_for_the_runs_they_describe(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    RunFiles(run).append_metrics({"step": 1000, "is_1000": 3.0, "elapsed": 60.0})
    (run / "config.yaml").write_text("method_label: null\nloss: {name: wgan}\nlipschitz: {name: gp}\n"
                                     "dataset: {name: cifar10}\narch: {name: resnet_cifar}\n")
    series = collect([run], "is_1000")
    finals = paper_finals(series, "is_1000")
    assert finals == {"wgan_gp": PAPER_FINAL[0]} and finals["wgan_gp"].value == 7.86
    by_steps, by_time = plot(series, "is_1000", False, finals).axes
    assert [list(line.get_ydata()) for line in by_steps.lines] == [[3.0], [7.86, 7.86]]
    assert by_steps.get_legend().texts[1].get_text() == "paper, Table 3: WGAN-GP ResNet 7.86 (final)"
    by_steps, by_time = plot(series, "is_1000", False, finals, YScale.symlog).axes
    assert by_steps.get_yscale() == by_time.get_yscale() == "symlog"


@pytest.mark.slow
def test_the_figures_of_a_study_are_logged_to_wandb_beside_its_runs(train_tiny, tmp_path, offline_wandb, capsys):
    """Curves and the report each log their PNG and numbers as a W&B run of job type `figure` in the
    runs' project and group; the study's `wandb/` folder they leave is no job of the study."""
    study = tmp_path / "study"
    for method in ("wgan_gp", "wgan_clip"):
        train_tiny(f"method={method}", "logger=wandb", "logger.project=figs", "logger.tags=[tiny]", "study=toy_figs",
                   run_dir=study / f"method={method}")
    assert main([str(study), "--metric", "w1"]) == 0
    printed = capsys.readouterr().out
    (log,) = study.glob("figures_wandb/wandb/offline-run-*/run-*.wandb")
    curves = finished_run(log)
    assert {k: curves["run"][k] for k in ("name", "job_type", "group", "project", "tags")} == \
        {"name": "curves_w1", "job_type": "figure", "group": "toy_figs", "project": "figs", "tags": ["tiny"]}
    assert [row.get("curves_w1/_type") for row in curves["history"]] == ["image-file"]
    last = {s.method: s.values[-1] for s in collect([study], "w1")}
    assert curves["summary"]["last"] == {f"{m}: {study / f'method={m}'}": pytest.approx(v) for m, v in last.items()}
    assert f"W&B: run {curves['run']['id']} (curves_w1) in project figs, group toy_figs, offline: " \
           f"`wandb sync {study / 'figures_wandb' / 'wandb'}/offline-run-*-{curves['run']['id']}` uploads it" in printed

    assert report_main([str(study), "--metric", "w1", "--thresholds", "10"]) == 0
    assert "Jobs: 2 complete," in capsys.readouterr().out  # not the figure's W&B folder
    (report_log,) = set(study.glob("figures_wandb/wandb/offline-run-*/run-*.wandb")) - {log}
    report = finished_run(report_log)
    assert (report["run"]["name"], report["run"]["job_type"], report["run"]["group"]) == ("report-w1", "figure", "toy_figs")
    assert [row.get("success/_type") for row in report["history"]] == ["image-file"]
    better = "wgan_gp" if last["wgan_gp"] < last["wgan_clip"] else "wgan_clip"  # W1: lower is better
    sign = report["summary"]["sign_test"]
    assert (sign[f"{'a' if sign['a'] == better else 'b'}_better"], sign["ties"], sign["p_value"]) == (1, 0, 1.0)
    assert report["summary"]["successes"] == {"wgan_clip": {"10.0": 1}, "wgan_gp": {"10.0": 1}}  # as report.csv

    assert main([str(study), "--metric", "w1", "--no-log"]) == 0
    assert len(list(study.glob("figures_wandb/wandb/offline-run-*"))) == 2
