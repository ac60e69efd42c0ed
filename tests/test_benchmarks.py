"""Smoke test of the benchmark suite: the structure of its results."""

import json

from benchmarks import page, run, workloads


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
    text = page.render(results, run.versions(), table, "XLA TABLE", "ACCURACY TABLE",
                       "BACKEND TABLE")
    ratio = f"step costs {speed['ratio']['importance_256']:.2f} times a `model.fit` step"
    assert ratio in text and "XLA TABLE" in text and "ACCURACY TABLE" in text
    assert "BACKEND TABLE" in text


def test_accuracy_table_lists_both_methods_per_dataset():
    from benchmarks import report

    point = {"steps": 10, "seconds": 0.5, "final_accuracy": 0.9}
    table = report.accuracy_table({
        "digits": {"target_accuracy": 0.9, "train_samples": 100,
                   "fit": point, "importance": point},
        "mnist5k": None,
    })
    assert table.count("| digits |") == 2 and "not installed" in table


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
    assert "| dataset | train samples |" in text and "{" not in text  # all filled in
