"""`examples/loss_ranking.py` runs end to end on a small generated corpus in
the format of `keras.datasets.reuters`, and offline on scikit-learn's digits."""

import math

import numpy as np
from test_examples import datasets  # noqa: F401  (the faked Keras cache)

QUICK = ["--epochs", "2", "--batch-size", "8", "--top", "3"]


def generated_corpus(folder, rng, count=120, topics=4):
    """Newswires whose topic decides most of their words, in `reuters.npz`."""
    sequences = np.empty(count, dtype=object)
    labels = rng.integers(0, topics, size=count)
    for i, topic in enumerate(labels):
        length = rng.integers(8, 25)
        own = rng.integers(10 + 50 * topic, 60 + 50 * topic, size=length)
        shared = rng.integers(1, 1500, size=length)
        sequences[i] = np.where(rng.random(length) < 0.7, own, shared).tolist()
    np.savez(folder / "reuters.npz", x=sequences, y=labels)


def test_the_example_reports_and_compares_the_three_strategies(datasets, tmp_path,  # noqa: F811
                                                               capsys):
    import loss_ranking

    generated_corpus(datasets, np.random.default_rng(0))
    figure = tmp_path / "report.png"
    results, report = loss_ranking.main(QUICK + ["--report-plot", str(figure)])

    num_train = 84  # keras.datasets.reuters keeps 70 % for training
    assert list(results) == ["ordinary", "percentile", "mass"]
    assert results["ordinary"].steps == 2 * math.ceil(num_train / 8)
    assert results["percentile"].steps == 2 * math.ceil(math.ceil(0.3 * num_train) / 8)
    assert results["mass"].steps < results["ordinary"].steps
    for result in results.values():
        assert np.isfinite([result.train_loss, result.test_loss, result.selected_loss]).all()
    assert len(report.losses) == num_train
    assert sum(b.count for b in report.bins) == num_train
    assert report.class_names[0] == "cocoa"
    output = capsys.readouterr().out
    assert "Hardest 3 of 84" in output and "left out" in output and "percentile" in output
    assert figure.read_bytes().startswith(b"\x89PNG")


def test_the_example_runs_offline_on_digits(datasets, capsys):  # noqa: F811
    import loss_ranking

    results, report = loss_ranking.main(QUICK + ["--dataset", "digits", "--data-fraction",
                                                 "0.1", "--bottom", "--no-shuffle",
                                                 "--bins", "range"])
    assert report.kind == "range" and sum(b.count for b in report.bins) == len(report.losses)
    assert results["percentile"].steps < results["ordinary"].steps
    assert "bottom 30%" in capsys.readouterr().out
