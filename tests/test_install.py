"""The install paths the README names: an installed wheel (`pip install .`) carries conf/ and sweeps/,
so its console scripts and compose_config work from any directory, as the source checkout's do."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import CONF_DIR, ROOT



@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, text=True)
    (path,) = out.glob("wgan-*.whl")
    return path


@pytest.mark.slow
def test_the_wheel_holds_every_module_config_and_study(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "wgan").rglob("*.py")}
    configs = {f"wgan/conf/{p.relative_to(CONF_DIR).as_posix()}" for p in CONF_DIR.rglob("*.yaml")}
    studies = {f"wgan/conf/sweeps/{p.name}" for p in (ROOT / "sweeps").glob("*.yaml")}
    assert sources | configs | studies <= names, sorted((sources | configs | studies) - names)
    assert len(studies) >= 6 and "wgan/conf/config.yaml" in names


@pytest.mark.slow
def test_an_installed_wheel_composes_configs_and_studies_from_any_directory(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, text=True)
    # The installed copy first on the path, the venv's dependencies after it; run outside the checkout.
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = ("import wgan.config as c; cfg = c.compose_config(['sweeps=robustness_toy']);"
            "print(c.config_dir()); print(cfg.study, cfg.arch.count, cfg.train.iterations)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    where, values = result.stdout.split("\n")[:2]
    assert Path(where) == target / "wgan" / "conf"
    assert values == "robustness_toy 10 600"
    for command, shows in (("wgan-report", "usage: wgan-report"), ("wgan-plan", "usage: wgan-plan"), ("wgan-curves", "--negate")):
        shown = subprocess.run([str(target / "bin" / command), "--help"], cwd=tmp_path, env=env,
                               capture_output=True, text=True)
        assert shown.returncode == 0 and shows in shown.stdout, shown.stderr
