"""The suite tests the package as installed, not the source tree beside it."""

import json
from importlib import metadata
from pathlib import Path

import importance_sampling

ROOT = Path(__file__).resolve().parent.parent


def regular_install():
    """Whether the package is installed as a copy (not in editable mode).

    Metadata in the source tree (left by a build, or by `setup.py develop`)
    is not an install of a copy; an editable install says so in its
    `direct_url.json`.
    """
    for distribution in metadata.distributions(name="keras-importance-sampling"):
        if Path(distribution.locate_file("")).resolve() == ROOT:
            continue
        text = distribution.read_text("direct_url.json")
        if not (text and json.loads(text).get("dir_info", {}).get("editable", False)):
            return True
    return False


def test_the_imported_package_is_the_installed_one():
    package = Path(importance_sampling.__file__).resolve().parent
    in_source_tree = package == ROOT / "importance_sampling"
    # A regular install is tested as installed: run the suite from `tests/`
    # (`cd tests && python -m pytest -q`), not from the repository's root.
    assert in_source_tree != regular_install(), (
        f"importance_sampling was imported from {package}"
    )
