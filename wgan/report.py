"""`python -m wgan.report` (or `wgan-report`): the robustness table of a study (the paper's Table 2
and Appendix B) and the paired comparison of two of its methods with an exact sign test (Appendix C:
one- vs two-sided penalty), from the `results.json` of its jobs, or from their W&B runs.

    python -m wgan.report multirun/robustness_toy
    python -m wgan.report multirun/robustness_paper --metric is_50k --thresholds 3,5,7
    python -m wgan.report --wandb me/wgan --group robustness_toy --out reports/toy
    python -m wgan.report multirun/appendix_c      # one- vs two-sided penalty, beside Appendix C

Beside the threshold table, the paired comparison of the two methods (A, B): on each architecture
scored under both, which scored better ("A scored higher in k of n architectures"), with an exact
two-sided sign test (scipy's binomtest at 1/2) of whether either is better more often than chance.
Ties, two diverged jobs of one architecture among them, are counted and left out of the test, as
the sign test does; a diverged job loses to any scored one.

A job succeeds at threshold t when its final success metric (or with `--scores best` its best over the
run's evaluations) is better than t: greater, or smaller
for a metric whose lower values are better (W1, FID, KID: as the metric registry declares it); a
diverged job fails at every threshold; crashed, unfinished, unscored and missing jobs are listed,
never counted. Prints Markdown and writes `report.md`, `report.csv` and `success.png` into `--out`
(default: the study dir), each atomically, and logs `success.png` to W&B beside the jobs (a run of
job type `figure` in their project and group, the counts and the sign test as its summary) unless
they ran with `logger=none` or `--no-log` is given.
"""
from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Optional

from wgan.files import OUTCOMES, DiskFull, Status, atomic_write, atomic_write_text, counted, read_results
from wgan.logger import (FIGURE_JOB_TYPE, WANDB_DIR, FigureDestination, add_no_log_argument, figure_wandb,
                         log_figure_run, runs_figure_destination)
from wgan.metrics import Better, direction

RESULTS = "results.json"
SUCCESS_FIGURE = "success.png"
IS_THRESHOLDS = [1.0 + 0.5 * i for i in range(17)]
HQ_THRESHOLDS = [round(0.1 * i, 1) for i in range(1, 10)]
# Appendix B of the paper (200 ImageNet 32x32 architectures, GAN vs WGAN-GP): min IS -> the four columns.
PAPER_COUNTS = {
    1.0: (0, 8, 192, 0), 1.5: (0, 50, 150, 0), 2.0: (0, 60, 140, 0), 2.5: (0, 74, 125, 1),
    3.0: (1, 88, 110, 1), 3.5: (0, 111, 86, 3), 4.0: (1, 126, 67, 6), 4.5: (0, 136, 55, 9),
    5.0: (0, 147, 42, 11), 5.5: (0, 148, 32, 20), 6.0: (0, 145, 21, 34), 6.5: (1, 131, 11, 57),
    7.0: (1, 104, 5, 90), 7.5: (2, 67, 3, 128), 8.0: (1, 34, 0, 165), 8.5: (0, 6, 0, 194), 9.0: (0, 0, 0, 200),
}

# Appendix C of the paper: 174 architectures under the two-sided penalty (wgan_gp) and the one-sided
# one (wgan_gp_onesided); the two-sided scored higher in 100, the one-sided in 77, as published
# (100 + 77 is 177, not 174; the test below takes the two counts, which is all a sign test needs).
PAPER_APPENDIX_C_PAIR = ("wgan_gp", "wgan_gp_onesided")
PAPER_APPENDIX_C = (100, 77, 174)


class Scores(Enum):
    """Which of a job's results the report scores: the last evaluation's, or each value's best."""

    final = "final"
    best = "best"

    def __str__(self) -> str:  # as argparse shows the choices
        return self.value


class ReportError(Exception):
    """A problem with the inputs that the user has to fix; the CLI prints it and exits 2."""


@dataclass(frozen=True)
class Job:
    where: str  # job directory relative to the study dir, or the W&B run name
    status: str  # a Status of results.json, or "unfinished" (none yet)
    method: Optional[str] = None
    key: Optional[tuple] = None  # (dataset, arch, arch_seed, seed): the same architecture for every method
    study: Optional[str] = None
    final: dict = field(default_factory=dict)  # the scored values: results' final, or best (Scores)
    error: str = ""  # the last traceback line of a crashed job


@dataclass
class Report:
    study: str
    metric: str
    better: Better  # the metric's direction: a success is a value better than the threshold
    thresholds: list[float]
    methods: list[str]  # every method of the study, for the per-method table
    pair: Optional[tuple[str, str]]  # (A, B) of the two-method table; None with fewer than two methods
    pair_counts: dict[float, tuple[int, int, int, int]]  # threshold -> only A, only B, both, neither
    paired: int  # architectures with a scored result for both A and B
    sign: Optional[SignTest]  # which of A and B scored better on each of those architectures
    successes: dict[str, dict[float, int]]  # method -> threshold -> successful jobs
    scored: dict[str, int]  # method -> jobs with a score (diverged included)
    status_counts: Counter
    crashed: list[Job]
    unfinished: list[Job]
    missing: list[tuple[tuple, str]]
    no_score: list[Job]
    paper: bool  # print the paper's published counts beside ours
    source: Scores = Scores.final  # the jobs' final or best values


@dataclass(frozen=True)
class SignTest:
    """Paired architectures on which A scored better, B scored better, or both the same."""

    a_better: int
    b_better: int
    ties: int  # left out of the test

    @property
    def p_value(self) -> float:
        """The exact two-sided sign test: A's wins among the untied pairs against Binomial(n, 1/2)."""
        from scipy.stats import binomtest  # imported on use: it slows every start by a second

        untied = self.a_better + self.b_better
        return binomtest(self.a_better, untied).pvalue if untied else 1.0


def sign_test(both: list[dict[str, float]], pair: tuple[str, str], better: Better) -> SignTest:
    a, b = pair
    a_better = sum(better.beats(s[a], s[b]) for s in both)
    b_better = sum(better.beats(s[b], s[a]) for s in both)
    return SignTest(a_better, b_better, len(both) - a_better - b_better)


def job_from_results(where: str, results: Any, scores: Scores = Scores.final) -> Job:
    """One job from its results mapping; anything without an outcome (an interrupted run, a
    damaged file) is still unfinished."""
    if not isinstance(results, dict) or results.get("status") not in OUTCOMES:
        return Job(where, "unfinished")
    key = tuple(results.get(name) for name in ("dataset", "arch", "arch_seed", "seed"))
    error = ""
    if results["status"] == Status.crashed:  # W&B summaries leave the traceback out; the reason is the next best
        lines = str(results.get("traceback") or results.get("reason") or "").strip().splitlines()
        error = lines[-1] if lines else "no traceback recorded"
    return Job(where, results["status"], str(results.get("method")), key, results.get("study"),
               results.get(scores.value) or {}, error)


def is_job_dir(path: Path) -> bool:
    # exists(): a results.json that is a folder still marks a job (an unfinished one)
    return (path / RESULTS).exists() or (path / "config.yaml").is_file() or (path / ".hydra").is_dir()


def find_job_dirs(study_dir: Path) -> list[Path]:
    """Job directories at any depth; a job's own subfolders (.hydra, wandb, samples) are not searched,
    nor any `wandb` folder (where a figure drawn from the study logs: its run's files/config.yaml is no job).
    Each folder is visited once however many paths lead to it, so a symlink loop ends and no job is
    counted twice; links are followed after every real path, so a job is named by its real path
    where it has one. A folder that cannot be read is named on stderr."""
    found, seen, pending, linked = [], set(), [study_dir], []
    while pending or linked:
        path = pending.pop() if pending else linked.pop()
        try:
            stat = path.stat()
            if (stat.st_dev, stat.st_ino) in seen:
                continue
            seen.add((stat.st_dev, stat.st_ino))
            if path != study_dir and is_job_dir(path):
                found.append(path)
                continue
            for child in path.iterdir():
                if child.is_dir() and not child.name.startswith(".") and child.name != WANDB_DIR:
                    (linked if child.is_symlink() else pending).append(child)
        except OSError as error:
            print(f"wgan-report: warning: skipped {path}: {error.strerror or error}", file=sys.stderr)
    return sorted(found)


def records_from_dir(study_dir: Path, scores: Scores = Scores.final) -> list[Job]:
    if not study_dir.is_dir():
        raise ReportError(f"study directory {study_dir} does not exist")
    jobs = [job_from_results(job.relative_to(study_dir).as_posix(), read_results(job / RESULTS), scores)
            for job in find_job_dirs(study_dir)]
    if not jobs:
        raise ReportError(f"no jobs under {study_dir}: looked for directories holding {RESULTS}, config.yaml or .hydra/")
    return jobs


def plain(value: Any) -> Any:
    """W&B summaries and their nested dicts only offer keys() and [], not the dict interface."""
    if hasattr(value, "keys") and hasattr(value, "__getitem__"):
        return {key: plain(value[key]) for key in value.keys()}
    return value


def records_from_wandb(runs: Iterable[Any], scores: Scores = Scores.final) -> list[Job]:
    """Jobs from W&B runs (`.summary`, `.name`, `.state`): the summary holds the keys of results.json.
    The group's figures (`.job_type` FIGURE_JOB_TYPE: curves, reports drawn from its runs) are no jobs."""
    jobs = []
    for run in runs:
        if getattr(run, "job_type", None) == FIGURE_JOB_TYPE:
            continue
        job = job_from_results(run.name, plain(run.summary), scores)
        jobs.append(Job(f"{run.name} (W&B state: {run.state})", "unfinished") if job.status == "unfinished" else job)
    return jobs


def wandb_runs(path: str, group: str) -> list[Any]:
    import wandb  # imported here: slow to import, and only this source needs it

    return list(wandb.Api().runs(path, filters={"group": group}))


def count_key(pattern: str, keys: Iterable[str]) -> Optional[str]:
    """The key matching `pattern` (e.g. is_50k, is_5000) with the largest sample count."""
    counted = [(int(m[1]) * (1000 if m[2] else 1), key) for key in keys if (m := re.fullmatch(pattern, key))]
    return max(counted)[1] if counted else None


def default_metric(jobs: list[Job]) -> str:
    keys = {key for job in jobs if job.status == Status.complete for key in job.final}
    metric = count_key(r"is_(\d+)(k?)", keys) or count_key(r"cls_is_(\d+)(k?)", keys)
    if metric is None and "hq_fraction" in keys:
        metric = "hq_fraction"
    if metric is None:
        raise ReportError(f"no is_<count>, cls_is_<count> or hq_fraction in the final metrics; pass --metric "
                          f"(found: {', '.join(sorted(keys)) or 'none'})")
    return metric


def default_thresholds(metric: str) -> list[float]:
    if metric.startswith(("is_", "cls_is_")):
        return IS_THRESHOLDS
    if metric == "hq_fraction":
        return HQ_THRESHOLDS
    raise ReportError(f"--thresholds is required for metric {metric} (it has no default thresholds)")


def metric_direction(metric: str) -> Better:
    better = direction(metric)
    if better is None:
        raise ReportError(f"--metric {metric}: no metric of wgan.metrics declares it, so whether higher or lower "
                          "is better is unknown")
    return better


def score(job: Job, metric: str, better: Better) -> Optional[float]:
    """The job's score; the worst value for a diverged job (it fails at every threshold); None when unscored."""
    if job.status == Status.diverged:
        return better.worst
    value = job.final.get(metric)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def choose_pair(methods: Counter, wanted: Optional[list[str]]) -> Optional[tuple[str, str]]:
    if wanted:
        if len(wanted) != 2 or wanted[0] == wanted[1] or not set(wanted) <= set(methods):
            raise ReportError(f"--methods needs two of the study's methods: {', '.join(sorted(methods))}")
        return wanted[0], wanted[1]
    common = sorted(method for method, _ in sorted(methods.items(), key=lambda item: (-item[1], item[0]))[:2])
    return (common[0], common[1]) if len(common) == 2 else None


def sort_key(key: tuple) -> tuple:
    """Architecture keys mix numbers, strings and None; sort numbers numerically."""
    return tuple((0, part, "") if isinstance(part, (int, float)) else (1, 0, str(part)) for part in key)


def build_report(jobs: list[Job], metric: Optional[str] = None, thresholds: Optional[list[float]] = None,
                 methods: Optional[list[str]] = None, study: str = "", source: Scores = Scores.final) -> Report:
    metric = metric or default_metric(jobs)
    better = metric_direction(metric)
    thresholds = sorted(thresholds or default_thresholds(metric))
    results = [job for job in jobs if job.status != "unfinished"]
    scores: dict[tuple, dict[str, float]] = {}  # key -> method -> score
    no_score = []
    for job in results:  # a re-run of the same job (a later sweep dir) replaces the earlier one
        value = score(job, metric, better) if job.status != Status.crashed else None
        if value is not None:
            scores.setdefault(job.key, {})[job.method] = value
        elif job.status == Status.complete:
            no_score.append(job)
    seen_methods = sorted({job.method for job in results})
    scored = Counter(method for by_method in scores.values() for method in by_method)
    pair = choose_pair(Counter(job.method for job in results), methods)
    both = [by_method for by_method in scores.values() if pair and set(pair) <= set(by_method)]
    present = {(job.key, job.method) for job in results}
    studies = {job.study for job in results if job.study}
    return Report(
        study=study or ", ".join(sorted(studies)), metric=metric, better=better, thresholds=thresholds,
        methods=seen_methods, pair=pair, paired=len(both), sign=sign_test(both, pair, better) if pair else None,
        pair_counts={t: pair_row(both, pair, t, better) for t in thresholds} if pair else {},
        successes={m: {t: sum(better.beats(s.get(m, better.worst), t) for s in scores.values()) for t in thresholds}
                   for m in seen_methods},
        scored={method: scored[method] for method in seen_methods},
        status_counts=Counter(job.status for job in jobs),
        crashed=[job for job in jobs if job.status == Status.crashed],
        unfinished=[job for job in jobs if job.status == "unfinished"],
        missing=[(key, m) for key in sorted({job.key for job in results}, key=sort_key) for m in seen_methods
                 if (key, m) not in present],
        no_score=no_score,
        paper="robustness_paper" in studies and pair == ("gan", "wgan_gp") and metric.startswith("is_"),
        source=source,
    )


def pair_row(both: list[dict[str, float]], pair: tuple[str, str], t: float, better: Better
             ) -> tuple[int, int, int, int]:
    a, b = pair
    wins = [(better.beats(s[a], t), better.beats(s[b], t)) for s in both]
    return (wins.count((True, False)), wins.count((False, True)), wins.count((True, True)), wins.count((False, False)))


def fmt(threshold: float) -> str:
    return f"{threshold:.1f}" if round(threshold, 1) == threshold else f"{threshold:g}"


def threshold_label(report: Report) -> str:
    """The threshold column's header: `min is_50k (higher is better)`, `max w1 (lower is better)`."""
    bound = "min" if report.better is Better.higher else "max"
    return f"{bound} {report.metric} ({report.better.value} is better)"


def pair_labels(report: Report) -> list[str]:
    a, b = report.pair
    return [f"only {a}", f"only {b}", "both succeeded", "both failed"]


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def describe_key(key: tuple) -> str:
    return ", ".join(f"{name}={part}" for name, part in zip(("dataset", "arch", "arch_seed", "seed"), key))


def to_markdown(report: Report) -> str:
    c = report.status_counts
    lines = [f"# Robustness report: {report.study or 'study'}", "",
             f"Success: {report.source.value} `{report.metric}` {'>' if report.better is Better.higher else '<'} threshold "
             f"({report.better.value} is better). Jobs: {c['complete']} complete, {c['diverged']} diverged "
             f"(fail at every threshold), {c['crashed']} crashed, {c['unfinished']} unfinished; "
             f"{len(report.missing)} missing, {len(report.no_score)} without a score.", ""]
    if report.pair:
        header = [threshold_label(report)] + pair_labels(report)
        rows = [[fmt(t), *report.pair_counts[t]] for t in report.thresholds]
        if report.paper:
            header += [f"paper: {label}" for label in pair_labels(report)]
            rows = [row + list(PAPER_COUNTS.get(t, ("",) * 4)) for row, t in zip(rows, report.thresholds)]
        lines += [f"## {report.pair[0]} vs {report.pair[1]} ({counted(report.paired, 'architecture')} scored for both)", "",
                  *table(header, rows), "", *paired_comparison(report), ""]
    lines += ["## Successful jobs per method", "",
              *table([threshold_label(report)] + report.methods,
                     [[fmt(t)] + [f"{report.successes[m][t]}/{report.scored[m]}" for m in report.methods]
                      for t in report.thresholds]), ""]
    sections = [("Crashed", [f"`{job.where}`: {job.error}" for job in report.crashed]),
                ("Unfinished", [f"`{job.where}`" for job in report.unfinished]),
                ("Missing", [f"{describe_key(key)}: {method}" for key, method in report.missing]),
                ("No score", [f"`{job.where}` ({job.method}): no `{report.metric}` in {report.source.value}" for job in report.no_score])]
    for title, items in sections:
        if items:
            lines += [f"## {title} ({len(items)})", "", *[f"- {item}" for item in items], ""]
    return "\n".join(lines)


def sign_sentence(a: str, b: str, a_better: int, b_better: int, n: int, p: float) -> str:
    return (f"{a} scored higher in {a_better} of {n} architectures, {b} in {b_better}; "
            f"exact two-sided sign test p = {p:.3g}")


def paired_comparison(report: Report) -> list[str]:
    """The sign test's sentences, and the paper's where it published the same comparison."""
    (a, b), sign = report.pair, report.sign
    lines = [sign_sentence(a, b, sign.a_better, sign.b_better, report.paired, sign.p_value)
             + f" ({sign.ties} tied, left out of the test; a diverged job loses to any scored one)."]
    if report.pair == PAPER_APPENDIX_C_PAIR and report.metric.startswith("is_"):
        two, one, n = PAPER_APPENDIX_C
        lines += ["", "Paper (Appendix C, Inception Score): "
                  + sign_sentence(a, b, two, one, n, SignTest(two, one, 0).p_value)
                  + f" (as published: {two} + {one} = {two + one}, not {n}); not significant at p < 0.05."]
    return lines


def csv_rows(report: Report) -> list[tuple[str, str, int, int]]:
    """Tidy rows (threshold, column, count, out_of): the two-method table, then the per-method counts."""
    rows = []
    for t in report.thresholds:
        if report.pair:
            rows += [(fmt(t), label, n, report.paired) for label, n in zip(pair_labels(report), report.pair_counts[t])]
        rows += [(fmt(t), m, report.successes[m][t], report.scored[m]) for m in report.methods]
    return rows


def plot_success(report: Report, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg without touching pyplot's global backend
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for method in report.methods:
        n = report.scored[method]
        axes.plot(report.thresholds, [report.successes[method][t] / n if n else 0.0 for t in report.thresholds],
                  marker="o", label=f"{method} (n={n})")
    axes.set(title=f"{report.study}: {report.metric}", xlabel=f"threshold ({threshold_label(report)})",
             ylabel="fraction successful", ylim=(-0.02, 1.02))
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    atomic_write(path, lambda file: figure.savefig(file, format="png", dpi=120))


def csv_text(report: Report) -> str:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["threshold", "column", "count", "out_of"])
    writer.writerows(csv_rows(report))
    return text.getvalue()


def write_outputs(report: Report, markdown: str, out: Path) -> None:
    """Each file atomically: a report rewritten over an older one is the old or the new one, whole."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "report.md", markdown + "\n")
    atomic_write_text(out / "report.csv", csv_text(report))
    plot_success(report, out / SUCCESS_FIGURE)


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wgan-report", description=__doc__.split("\n\n")[0])
    parser.add_argument("study_dir", nargs="?", type=Path, help="folder holding the study's job directories")
    parser.add_argument("--metric", help="key of results['final'] (default: largest is_<n>, cls_is_<n>, hq_fraction); "
                                         "its direction (lower is better for w1, FID, KID) is the metric's")
    parser.add_argument("--thresholds", help="comma-separated, e.g. 1,1.5,2 (default: the paper's 17 for IS)")
    parser.add_argument("--scores", type=Scores, choices=list(Scores), default=Scores.final,
                        help="score each job by its final evaluation (the paper's) or by each value's best over its "
                             "evaluations (default: final)")
    parser.add_argument("--methods", help="the two methods of the paired table, A,B")
    parser.add_argument("--out", type=Path, help="where report.md, report.csv, success.png go (default: study dir)")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read the runs of --group from W&B instead")
    parser.add_argument("--group", help="the W&B group (the study name)")
    add_no_log_argument(parser)
    return parser.parse_args(argv)


def figure_destination(args: argparse.Namespace, jobs: list[Job]) -> FigureDestination:
    """Where success.png is logged: the W&B project and group the jobs were read from, or the job
    directories' logger (wgan.logger.runs_figure_destination)."""
    if args.wandb and not args.no_log:
        entity, _, project = args.wandb.rpartition("/")
        return figure_wandb(project, entity or None, [], args.group)
    return runs_figure_destination([args.study_dir / job.where for job in jobs] if args.study_dir else [], args.no_log)


def summary(report: Report) -> dict[str, Any]:
    """The report's counts for W&B: successes per method and threshold, and the paired sign test."""
    counts = {"metric": report.metric, "scored": report.scored,
              "successes": {m: {fmt(t): n for t, n in by_threshold.items()} for m, by_threshold in report.successes.items()}}
    if report.sign:
        sign = report.sign
        counts["sign_test"] = {"a": report.pair[0], "b": report.pair[1], "a_better": sign.a_better,
                               "b_better": sign.b_better, "ties": sign.ties, "p_value": sign.p_value}
    return counts


def split(text: Optional[str]) -> Optional[list[str]]:
    return [part.strip() for part in text.split(",") if part.strip()] if text else None


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    out = args.out or args.study_dir
    try:
        if args.wandb:
            if not args.group or not out:
                raise ReportError("--wandb needs --group NAME and --out DIR (where the report goes)")
            jobs, study = records_from_wandb(wandb_runs(args.wandb, args.group), args.scores), args.group
        elif args.study_dir is None:
            raise ReportError("give a study directory, or --wandb ENTITY/PROJECT --group NAME")
        else:
            jobs, study = records_from_dir(args.study_dir, args.scores), ""
        try:
            thresholds = [float(t) for t in split(args.thresholds) or []]
        except ValueError:
            raise ReportError(f"--thresholds must be comma-separated numbers, not {args.thresholds!r}") from None
        report = build_report(jobs, args.metric, thresholds, split(args.methods), study, args.scores)
    except ReportError as error:
        print(f"wgan-report: error: {error}", file=sys.stderr)
        return 2
    markdown = to_markdown(report)
    print(markdown)
    try:
        write_outputs(report, markdown, out)
    except DiskFull as error:  # each file is the old or the new one, whole
        print(f"wgan-report: error: {error}", file=sys.stderr)
        return 1
    logged = log_figure_run(figure_destination(args, jobs), out_dir=out, name=f"report-{report.metric}",
                            figure=out / SUCCESS_FIGURE, config={"argv": sys.argv[1:] if argv is None else list(argv)},
                            summary=summary(report))
    print(logged, file=sys.stderr)  # stdout is the Markdown alone
    return 0


if __name__ == "__main__":
    sys.exit(main())
