"""The suite tests the package as installed, not the source tree beside it."""

import json
from importlib import metadata
from pathlib import Path

import importance_sampling

ROOT = Path(__file__).resolve().parent.parent


def editable_install():
    """Whether the package is installed in editable (development) mode.

    That is an install whose metadata says so, or whose metadata lies in the
    source tree (`setup.py develop`).
    """
    distribution = metadata.distribution("keras-importance-sampling")
    if Path(distribution.locate_file("")).resolve() == ROOT:
        return True
    text = distribution.read_text("direct_url.json")
    return bool(text) and json.loads(text).get("dir_info", {}).get("editable", False)


def test_the_imported_package_is_the_installed_one():
    package = Path(importance_sampling.__file__).resolve().parent
    in_source_tree = package == ROOT / "importance_sampling"
    # A regular install is tested as installed: run the suite from `tests/`
    # (`cd tests && python -m pytest -q`), not from the repository's root.
    assert in_source_tree == editable_install(), (
        f"importance_sampling was imported from {package}"
    )
