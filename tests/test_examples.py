"""The examples run in their quick mode, and the documentation builds cleanly.

Each example runs in a subprocess, from an empty temporary working directory,
with one CPU thread and ``HF_HUB_OFFLINE=1``: it must exit with status 0 and
print its key line. The documentation must build with ``mkdocs build --strict``
without a single warning.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES_DIR = ROOT / "examples"

# example file -> a line (part) its quick run must print
EXAMPLES = {
    "quickstart.py": "test mAP:",
    "cross_validation.py": "cross-validation done",
    "grid_search.py": "best parameters:",
    "save_and_load.py": "save/load: ",
    "own_clip_checkpoint.py": "fitted offline with teacher 'my_clip'",
}


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    pythonpath = [str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p]
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        HF_HUB_OFFLINE="1",
        MPLBACKEND="Agg",
        PYTHONPATH=os.pathsep.join(pythonpath),
        **extra,
    )
    return env


def test_every_example_is_tested_and_documented():
    found = sorted(p.name for p in EXAMPLES_DIR.glob("*.py"))
    assert found == sorted(EXAMPLES)
    for name in found:
        source = (EXAMPLES_DIR / name).read_text(encoding="utf-8")
        docstring = ast.get_docstring(ast.parse(source))
        assert docstring and len(docstring.splitlines()) > 3, name
        assert "--quick" in source and "CCD_EXAMPLE_QUICK" in source, name


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs_in_quick_mode(name, tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / name), "--quick"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert EXAMPLES[name] in result.stdout, output
    assert "identical predictions: False" not in result.stdout, output
    # nothing is left behind in the working directory
    assert list(tmp_path.iterdir()) == []


def test_quick_mode_from_the_environment(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / "save_and_load.py")],
        cwd=tmp_path,
        env=_env(CCD_EXAMPLE_QUICK="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "identical predictions: True" in result.stdout


@pytest.mark.skipif(
    any(
        importlib.util.find_spec(m) is None
        for m in ("mkdocs", "mkdocstrings", "material")
    ),
    reason="mkdocs, mkdocstrings or mkdocs-material is not installed",
)
def test_docs_build_strict_without_warnings(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        env=_env(NO_MKDOCS_2_WARNING="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    assert (tmp_path / "site" / "api" / "index.html").is_file()
