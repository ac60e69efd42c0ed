"""The measured numbers of `docs/examples.md` are those of the stored results."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPEC = importlib.util.spec_from_file_location(
    "examples_page", ROOT / "benchmarks" / "examples_page.py"
)
examples_page = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(examples_page)


@pytest.mark.parametrize("name", sorted(examples_page.EXAMPLES))
def test_every_measured_example_has_results_and_its_section_on_the_page(name):
    assert (examples_page.RESULTS / f"{name}.json").exists(), (
        f"run `python benchmarks/examples_page.py --run --only {name} --docs`"
    )
    assert f"<!-- example:{name} -->" in examples_page.PAGE.read_text()


def test_the_page_is_the_one_its_results_generate():
    assert examples_page.PAGE.read_text() == examples_page.page(), (
        "regenerate with `python benchmarks/examples_page.py --docs`"
    )


def test_a_section_states_the_time_to_uniforms_final_accuracy():
    def points(accuracies, seconds):
        return [[10 * (i + 1), s, 0.5, a] for i, (a, s) in enumerate(zip(accuracies, seconds))]

    def method(accuracies, seconds):
        return {"train_loss": 0.1, "test_loss": 0.2, "test_accuracy": accuracies[-1],
                "seconds": seconds[-1] + 1, "steps": 10 * len(accuracies),
                "points": points(accuracies, seconds)}

    results = {
        "environment": {"cpus": 2, "machine": "x86_64", "python": "3.11",
                        "tensorflow": "2.21", "keras": "3.15"},
        "methods": {
            "uniform": method([0.7, 0.8], [1.0, 2.0]),
            "importance": method([0.85, 0.9], [0.5, 1.0]),
            "unbiased": method([0.6, 0.79], [1.0, 2.0]),
        },
    }
    text = examples_page.section("canevet_icml2016", json.loads(json.dumps(results)))
    assert "| importance | 0.1000 | 0.2000 | 0.9000 | 1.0 s | 20 | 0.5 s | 10 |" in text
    assert "| unbiased | 0.1000 | 0.2000 | 0.7900 | 2.0 s | 20 | not reached | - |" in text
    assert "`importance` reached it in 4.00 times less training time" in text
    assert "`unbiased` did not reach it." in text
