"""The documentation builds strictly and every python block in it runs."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_examples import fake_mnist

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted((ROOT / "docs").glob("*.md"))
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks(page):
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def test_pages_with_code_are_found():
    assert {"index.md", "training.md"} <= {p.name for p in PAGES if python_blocks(p)}


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)],
                         ids=lambda p: p.name)
def test_python_blocks_run(page, tmp_path, monkeypatch):
    """The blocks of a page run in order, in one namespace, offline."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "datasets").mkdir()
    fake_mnist(tmp_path / "datasets", np.random.default_rng(0))
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"docs_{page.stem}"}
    for number, block in enumerate(python_blocks(page), start=1):
        code = compile(block, f"{page.name} block {number}", "exec")
        exec(code, namespace)


def test_mkdocs_builds_strictly(tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, cwd=ROOT,
    )
    assert process.returncode == 0, process.stderr
    assert (tmp_path / "site" / "training" / "index.html").exists()
