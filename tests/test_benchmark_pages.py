"""The time-to-accuracy pages say what their result files say.

`docs/benchmarks.md` (its time-to-accuracy section) and
`docs/when_it_pays.md` are written by `python benchmarks/time_to_accuracy.py
--docs` from the run files of `benchmarks/results/time_to_accuracy/`: they
are written again here from the same files and must come out the same, so
every number on them is the one of the stored results.
"""

import pytest

from benchmarks import time_to_accuracy as tta


def record(dataset, method, seed, points, step_ms=1.0):
    return {"dataset": dataset, "method": method, "seed": seed, "points": points,
            "step_ms_median": step_ms, "train_samples": 4000, "test_samples": 1000, "setting": {"hidden": [8], "steps": 40,
                                                    "eval_every": 10},
            "environment": {"date": "2026-01-01", "machine": "x86_64", "cpu_count": 2,
                            "load_average": [1.0, 1.0, 1.0], "backend": "tensorflow",
                            "backend_version": "2", "keras": "3"}}


UNIFORM = [[0, 0.0, 0.1], [10, 1.0, 0.8], [20, 2.0, 0.9], [30, 3.0, 0.92], [40, 4.0, 0.91]]
FAST = [[0, 0.0, 0.1], [10, 1.5, 0.93], [20, 3.0, 0.93]]
NEVER = [[0, 0.0, 0.1], [10, 2.0, 0.5], [20, 4.0, 0.6]]


def synthetic(fast=FAST, dataset="mnist5k"):
    results = {}
    for seed in (0, 1, 2):
        for method, points in (("uniform", UNIFORM), ("importance_loss", fast),
                               ("approximate", NEVER)):
            results[dataset, method, seed] = record(dataset, method, seed, points)
    return results


def test_the_target_is_the_mean_of_uniforms_last_three_evaluations():
    summary = tta.summarize(synthetic())["mnist5k"]
    assert summary["target"] == pytest.approx((0.9 + 0.92 + 0.91) / 3)
    assert summary["budget"] == 3.0  # uniform reaches 0.91 at its 30th step, 3 s


def test_ratios_count_a_seed_that_never_reaches_the_target_as_zero():
    methods = tta.summarize(synthetic())["mnist5k"]["methods"]
    fast, never = methods["importance_loss"], methods["approximate"]
    assert fast["ratios"] == [2.0] * 3 and fast["step_ratios"] == [3.0] * 3
    assert fast["reached"] == 3 and fast["accuracy_at_budget"] == [0.93] * 3
    assert never["ratios"] == [0.0] * 3 and never["reached"] == 0
    assert never["accuracy_at_budget"] == [0.5] * 3
    assert methods["uniform"]["ratio"] == 1.0


def test_the_tables_show_median_and_range_of_the_seeds():
    results = synthetic()
    results["mnist5k", "importance_loss", 2]["points"] = [[0, 0.0, 0.1], [10, 0.5, 0.95]]
    table = tta.dataset_table(tta.summarize(results), "mnist5k")
    assert "| `ImportanceTraining` (loss) | 3 / 3 | 2.00 (2.00-6.00) |" in table
    assert "| `ApproximateImportanceTraining` | 0 / 3 | 0.00 (0.00-0.00) |" in table
    ratios = tta.ratio_table(tta.summarize(results))
    assert "| `ImportanceTraining` (loss) | 2.00 (3/3) |" in ratios


@pytest.mark.parametrize("fast, verdict", [(FAST, "**met**"),
                                           ([[0, 0.0, 0.1], [30, 2.5, 0.95]], "**missed**")])
def test_the_aim_is_met_only_at_a_median_ratio_of_one_and_a_half(fast, verdict):
    page = tta.when_it_pays(synthetic(fast))
    assert f"Measured: {verdict}" in page
    ratio = tta.summarize(synthetic(fast))["mnist5k"]["methods"]["importance_loss"]["ratio"]
    assert f"{ratio:.2f} times faster" in page


def test_a_synthetic_dataset_does_not_meet_the_aim():
    page = tta.when_it_pays(synthetic(dataset="canevet"))
    assert "Measured: **missed**." in page and "canevet (synthetic, not counted)" in page


def test_a_stored_section_is_replaced_between_its_markers():
    text = f"# Page\n\nbefore\n\n{tta.START}\nold\n{tta.END}\n\nafter\n"
    new = tta.replace_section(text, f"{tta.START}\nnew\n{tta.END}")
    assert new == f"# Page\n\nbefore\n\n{tta.START}\nnew\n{tta.END}\n\nafter\n"
    assert tta.stored_section(new) == f"{tta.START}\nnew\n{tta.END}"


def test_the_benchmarks_page_section_is_the_one_of_the_stored_results():
    results = tta.load_results()
    stored = tta.stored_section(tta.BENCHMARKS_PAGE.read_text())
    assert stored is not None, "docs/benchmarks.md has no time-to-accuracy section"
    assert stored == tta.section(results, tta.load_seed_readme()), (
        "regenerate with `python benchmarks/time_to_accuracy.py --docs`")


def test_the_when_it_pays_page_is_the_one_of_the_stored_results():
    expected = tta.when_it_pays(tta.load_results(), tta._per_step(),
                                tta.load_seed_readme())
    assert tta.WHEN_PAGE.read_text() == expected, (
        "regenerate with `python benchmarks/time_to_accuracy.py --docs`")


def test_every_dataset_with_results_has_its_figure():
    for dataset in tta.summarize(tta.load_results()):
        assert (tta.FIGURES / f"time_to_accuracy_{dataset}.png").exists(), dataset
