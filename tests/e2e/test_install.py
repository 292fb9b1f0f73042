"""A wheel of the project installs one top-level name, `dianabot`, and runs the demo outside
the repository (the layer folders are mapped under it by setuptools' package_dir)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source") / "dianabot"
    # A copy, so that the build's own build/ and egg-info land there, not in the checkout.
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".git", ".venv*", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=240,
    )
    (built,) = out.glob("dianabot-*.whl")
    return built


def test_the_wheel_owns_one_top_level_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {
        "dianabot",
        next(n.split("/")[0] for n in names if ".dist-info/" in n),
    }
    assert "dianabot/content/story.yaml" in names
    assert "dianabot/domain/player.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "dianabot = dianabot.adapters.cli.main:main" in (
        zipfile.ZipFile(wheel).read(entry_points).decode()
    )


def test_the_installed_wheel_runs_the_demo_outside_the_repository(
    wheel: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    env.pop("DIANABOT_DATABASE_URL", None)
    script = (
        "import sys, dianabot; from dianabot.adapters.cli.main import main; "
        "assert dianabot.__file__.startswith(sys.argv[1]), dianabot.__file__; "
        "sys.argv = ['dianabot', 'demo', '--json']; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(site)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout)
    assert len(summary["players"]) == 5
