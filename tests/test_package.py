"""The installed package: declared dependencies, one top-level import name, usable outside the checkout."""

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data"


def run(command: list, **options) -> subprocess.CompletedProcess:
    """Run a command, failing the test with the end of its output (not a bare exit status)."""
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, **options)
    assert result.returncode == 0, (
        f"{command[:4]} -> {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    )
    return result


def test_every_imported_package_is_a_declared_requirement():
    """deptry reads pyproject.toml and every import under the package folders: an import whose
    distribution is not declared (DEP001) or is only a transitive dependency (DEP003) fails."""
    # the package's own folders only: a virtual environment inside the checkout, of any name, is not ours
    folders = ["assistant", "index", "ui", "eval"]
    command = [sys.executable, "-m", "deptry", *folders]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_wheel_installs_with_its_dependencies_and_ingests_bibtex_from_outside_the_checkout(tmp_path):
    """A new user's install: the wheel into a venv that sees nothing of this one (no system site
    packages), dependencies resolved by pip (its cache keeps this fast), then the researcher
    formats end to end: ingest a BibTeX file, export hits as RIS."""
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            tmp_path / "dist",
            REPO,
        ],
        timeout=600,
    )
    wheel = next((tmp_path / "dist").glob("paperchat-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"paperchat", wheel.name.split("-py")[0] + ".dist-info"}
    assert "paperchat/index/corpus/000_1df396135f0ff155.txt" in names and "paperchat/eval/questions.jsonl" in names

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], timeout=300)
    python = venv / "bin" / "python"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "VIRTUAL_ENV") and not key.startswith("PAPERCHAT_")
    }
    env["PAPERCHAT_CACHE_DIR"] = str(tmp_path / "cache")
    # The CPU build of torch first (a plain torch requirement would pull a CUDA build), then the wheel.
    run([python, "-m", "pip", "install", "-q", "torch==2.13.0"], env=env, timeout=900)
    run([python, "-m", "pip", "install", "-q", wheel], env=env, timeout=1200)

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    where = run([python, "-c", "import paperchat; print(paperchat.__file__)"], cwd=outside, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv)

    paperchat = venv / "bin" / "paperchat"
    index = tmp_path / "index"
    ingested = run([paperchat, "ingest", DATA / "zotero.bib", "--index", index], cwd=outside, env=env, timeout=900)
    assert "Traceback" not in ingested.stderr
    exported = run(
        [
            paperchat,
            "search",
            "sparse attention for long-context language models",
            "-k",
            "1",
            "--format",
            "ris",
            "--index",
            index,
        ],
        cwd=outside,
        env=env,
        timeout=900,
    )
    assert (
        re.search(r"^TY  - ", exported.stdout, re.MULTILINE)
        and "TI  - Sparse Attention for Long-Context Language Models" in exported.stdout
    )
    assert "2401.01234" in exported.stdout and "Traceback" not in exported.stderr


@pytest.mark.parametrize(("given", "expected"), [(None, "1"), ("2", "2")])
def test_numpy_gets_one_blas_thread_unless_the_environment_says_otherwise(given, expected):
    """The setting is read when numpy loads: importing paperchat first must set it, and keep a user's own value."""
    environment = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if given:
        environment["OPENBLAS_NUM_THREADS"] = given
    probe = "import os, paperchat, numpy; print(os.environ['OPENBLAS_NUM_THREADS'])"
    shown = subprocess.run([sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == expected
