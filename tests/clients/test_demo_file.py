"""``trainq demo`` from any directory: the demo pipeline ships inside the package, so an install
(not just the checkout) finds it, prints it, and the printed file validates.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.clients.test_cli_help import TRAINQ
from tests.fixtures import ROOT

PACKAGED = ROOT / "trainq" / "examples" / "ml-pipeline.yaml"


def install_layout(target: Path) -> Path:
    """trainq's packages and package data as pip installs them (setuptools' build_py), in ``target``."""
    egg = target / "egg"
    egg.mkdir(parents=True)
    code = "from setuptools import setup; setup()"
    args = ["-q", "egg_info", "--egg-base", str(egg), "build_py", "--build-lib", str(target / "site")]
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return target / "site"


def test_demo_pipeline_ships_with_the_package_and_validates_from_elsewhere(tmp_path: Path) -> None:
    # given trainq laid out as pip installs it, and a user in an unrelated directory
    site = install_layout(tmp_path / "install")
    home = tmp_path / "user"
    home.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "TRAINQ_WORKER_MODULES": '["workers.data", "workers.training", "workers.detection"]',
    }

    def trainq(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(TRAINQ), *args], cwd=home, env=env, capture_output=True, text=True, timeout=60
        )

    # when the demo's pipeline is printed there, then it is the packaged file
    shown = trainq("demo", "--print")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == PACKAGED.read_text()
    assert (site / "trainq" / "examples" / "ml-pipeline.yaml").read_text() == shown.stdout
    # and it validates as the demo's five-job DAG
    (home / "demo.yaml").write_text(shown.stdout)
    checked = trainq("pipeline", "validate", "demo.yaml")
    assert checked.returncode == 0, checked.stderr
    assert "ok: 5 jobs" in checked.stdout


def test_the_checkout_example_is_the_packaged_file() -> None:
    # one source of truth: the docs' examples/ml-pipeline.yaml is the file trainq ships
    assert (ROOT / "examples" / "ml-pipeline.yaml").resolve() == PACKAGED.resolve()
