"""The documentation builds strictly, every python block in it runs and every
signature it shows is the code's."""

import ast
import inspect
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


SIGNATURE = re.compile(r"^```text\n([\w.]+)(\(.*?\))\n```", re.DOTALL | re.MULTILINE)


def documented_signatures():
    """`(page, name, parameters)` of every signature block of the pages."""
    for page in PAGES:
        for name, parameters in SIGNATURE.findall(page.read_text(encoding="utf-8")):
            yield page.name, name.rsplit(".", 1)[-1], parameters


def documented_object(name):
    from importance_sampling import datasets, training

    for module in (training, datasets):
        if hasattr(module, name):
            return getattr(module, name)
    return getattr(training.ImportanceTraining, name)


def test_enough_signature_blocks_are_found():
    assert len(list(documented_signatures())) >= 10


@pytest.mark.parametrize("page, name, parameters", list(documented_signatures()),
                         ids=lambda value: value if isinstance(value, str) else None)
def test_signature_blocks_match_the_code(page, name, parameters):
    """Each signature shown in a `text` block has the code's names and defaults."""
    function = ast.parse(f"def {name}{parameters}: pass").body[0].args
    shown = [arg.arg for arg in function.args]
    defaults = [ast.literal_eval(value) for value in function.defaults]
    shown_defaults = dict(zip(shown[len(shown) - len(defaults):], defaults))

    actual = inspect.signature(documented_object(name))
    names = [p for p in actual.parameters if p != "self"]
    actual_defaults = {p: v.default for p, v in actual.parameters.items()
                       if v.default is not inspect.Parameter.empty}
    assert shown == names
    assert shown_defaults == actual_defaults
