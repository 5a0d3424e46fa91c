"""The installed package: one top-level import name, package data shipped, usable outside the checkout."""

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow


def test_wheel_installs_only_paperchat_and_searches_the_bundled_corpus_from_outside_the_checkout(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(REPO)],
                   check=True, capture_output=True, timeout=600)
    wheel = next((tmp_path / "dist").glob("paperchat-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"paperchat", wheel.name.split("-py")[0] + ".dist-info"}
    assert "paperchat/index/corpus/000_1df396135f0ff155.txt" in names and "paperchat/eval/questions.jsonl" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    assert site != Path(sysconfig.get_paths()["purelib"])
    before = set(os.listdir(site))
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True, capture_output=True, timeout=300)
    added = {name for name in set(os.listdir(site)) - before if not name.endswith(".dist-info") and name != "__pycache__"}
    assert added == {"paperchat"}

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH" and not key.startswith("PAPERCHAT_")}
    where = subprocess.run([str(python), "-c", "import paperchat; print(paperchat.__file__)"], cwd=outside, env=env, check=True, capture_output=True, text=True)
    assert Path(where.stdout.strip()).is_relative_to(site)
    result = subprocess.run([str(venv / "bin" / "paperchat"), "search", "Lastde++", "-k", "1", "--json", "-q", "--index", str(tmp_path / "index")],
                            cwd=outside, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["hits"][0]["id"] == "training-free-llm-generated-text-detection-by-mining-token-probability-sequences"
