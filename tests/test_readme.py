"""The README's commands, as written (and those of docs/configuration.md): each `python run.py`
command composes into a valid config (each job of a multirun), each `python -m wgan.<tool>` command
parses, and the image run trains offline (shortened to 20 iterations, as the README says, on the
first 100 images of each CIFAR-10 class: the folder's layout, fewer files to read). The
defaults the documents state are the composed config's, and the README's table of config groups
lists each group's options. `make run` is tests/test_default_run.py.
Offline, the Inception metrics are checked with the offline network (`fid_helper`): online, the
default weights download instead.
"""
from __future__ import annotations

import re
import shlex
import string
import subprocess
import sys

import pytest
import yaml
from omegaconf import OmegaConf

from helpers import ROOT, require_fid_helper
from wgan.config import compose_config, validate
from wgan.files import Results, RunFiles, Status
from wgan.metrics import cli as metrics_cli
from wgan import curves, plan, report
from wgan.study import expand_jobs

# The README and the configuration reference it links to: a user types the commands of both.
README = (ROOT / "README.md").read_text() + (ROOT / "docs" / "configuration.md").read_text()
# An indented command line of a code block, without its trailing comment; and the shell variables
# code blocks set (NAME="..."), which the commands after them use as $NAME.
COMMAND = re.compile(r"^    (python (?:run\.py|-m wgan\.\w+)\b[^#\n]*?)\s*(?:#.*)?$", re.MULTILINE)
VARIABLE = re.compile(r'^    ([A-Z_]+)="([^"]*)"\s*$', re.MULTILINE)
COMMANDS = [shlex.split(string.Template(line).substitute(dict(VARIABLE.findall(README))))
            for line in COMMAND.findall(README)]
PARSERS = {"wgan.metrics": metrics_cli.parse, "wgan.report": report.parse_args, "wgan.plan": plan.parse_args,
           "wgan.curves": curves.parse_args}


OFFLINE_INCEPTION = "metrics.inception.weights=fid_helper"


def runs() -> list[list[str]]:
    return [command[2:] for command in COMMANDS if command[1] == "run.py"]


def tools() -> list[list[str]]:
    return [command[2:] for command in COMMANDS if command[1] == "-m"]


def table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of the Markdown table under the header row `header`, backticks kept."""
    lines = text[text.index(header):].splitlines()[2:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def test_each_documented_default_is_what_cfg_job_prints():
    """docs/configuration.md's table of top-level settings against `python run.py --cfg job`'s config."""
    printed = OmegaConf.create(yaml.safe_load(OmegaConf.to_yaml(compose_config([]))))  # enums as their names
    rows = table_rows((ROOT / "docs" / "configuration.md").read_text(), "| key | default | meaning |")
    assert len(rows) >= 20
    for key, default, _ in rows:
        assert yaml.safe_load(default.strip("`")) == OmegaConf.select(printed, key.strip("`"), throw_on_missing=True), key


def test_the_readmes_table_of_groups_lists_each_groups_options_default_first():
    defaults = {}
    for entry in yaml.safe_load((ROOT / "conf" / "config.yaml").read_text())["defaults"]:
        if isinstance(entry, dict):
            ((group, option),) = entry.items()
            defaults[group.removeprefix("optional ")] = option
    rows = table_rows(README, "| group | options (the default first) | built by |")
    assert [row[0] for row in rows] == [f"`{g}`" for g in ("dataset", "arch", "lipschitz", "loss", "optimizer",
                                                            "method", "recipe", "metrics", "logger", "sweeps")]
    for group, options, _ in rows:
        group = group.strip("`")
        listed = re.findall(r"`(\w+)`", options.removeprefix("none by default; "))
        folder = ROOT / "sweeps" if group == "sweeps" else ROOT / "conf" / group
        assert sorted(listed) == sorted(p.stem for p in folder.glob("*.yaml")), group
        default = defaults[group]
        assert listed[0] == default if default in listed else options.startswith("none by default"), group


def test_the_readmes_results_json_row_names_every_key_and_status_of_the_results_record():
    (row,) = [cells for cells in table_rows(README, "| file | contents |") if cells[0] == "`results.json`"]
    named = set(re.findall(r"`(\w+)`", row[1]))
    assert set(Results.__annotations__) <= named and {status.value for status in Status} <= named


def test_the_readme_has_the_commands_a_user_types():
    assert [] in runs() and ["-m", "sweeps=robustness_toy"] in runs()  # python run.py, a study
    assert {command[0] for command in tools()} == set(PARSERS)


@pytest.mark.slow
@pytest.mark.parametrize("overrides", runs(), ids=" ".join)
def test_each_readme_run_command_composes_into_a_valid_config(overrides):
    if overrides[:1] == ["-m"]:  # a multirun: its first and last jobs, as the sweeper expands them
        base = compose_config(plan.base_overrides(overrides[1:]), return_hydra_config=True)
        jobs = expand_jobs(overrides[1:], base.hydra.sweeper.get("params"))
        assert len(jobs) >= 2
        configs = [jobs[0], jobs[-1]]
    else:
        configs = [overrides]
    for job in configs:
        cfg = compose_config(job)
        if "inception" in cfg.metrics.names:
            require_fid_helper()
            cfg = compose_config([*job, OFFLINE_INCEPTION])
        validate(cfg)


@pytest.mark.parametrize("arguments", tools(), ids=" ".join)
def test_each_readme_tool_command_parses(arguments):
    module, *argv = arguments
    PARSERS[module](argv)  # argparse exits 2 on an option the tool does not have


@pytest.mark.slow
def test_the_readme_image_run_trains_offline(cifar_jpeg, tmp_path):
    (line,) = [command for command in runs() if "dataset=imagefolder" in command]
    overrides = [f"dataset.root={cifar_jpeg / 'train'}" if o.startswith("dataset.root=") else o for o in line]
    shortened = [o for o in overrides if not o.startswith(("train.iterations=", "eval.every="))]
    assert len(shortened) == len(overrides) - 2
    command = [sys.executable, "run.py", *shortened, "train.iterations=20", "eval.every=10", f"hydra.run.dir={tmp_path}"]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=900)
    files = RunFiles(tmp_path)
    results = files.read_results()
    assert results["status"] == "complete" and results["step"] == 20 and results["final"] == {"step": 20}
    assert files.sample_figure(10).is_file() and files.sample_figure(20).is_file()
