"""Per-sample losses, the ranking by loss, the selections of its top and
bottom, the loss report and its console command."""

import itertools
import json

import keras
import numpy as np
import pytest
from conftest import blobs, make_classifier, one_hot

from importance_sampling.datasets import InMemoryDataset
from importance_sampling.ranking import (
    loss_report,
    per_sample_loss,
    plot_loss_report,
    rank_by_loss,
    select_mass,
    select_percentile,
)
from importance_sampling.report_command import main as report_main
from importance_sampling.report_command import run as report_run

X, LABELS = blobs(300, num_classes=3)


def keras_losses(model, x, y, loss=keras.losses.sparse_categorical_crossentropy):
    return keras.ops.convert_to_numpy(loss(y, model(x, training=False)))


def test_per_sample_loss_is_the_compiled_loss_of_each_sample_in_batches():
    model = make_classifier(2, 3, loss="sparse_categorical_crossentropy")
    losses = per_sample_loss(model, X, LABELS, batch_size=64)
    assert losses.shape == (300,) and losses.dtype == np.float32
    np.testing.assert_allclose(losses, keras_losses(model, X, LABELS), rtol=1e-5, atol=1e-6)
    # the batch size changes nothing
    np.testing.assert_allclose(per_sample_loss(model, X, LABELS, batch_size=7), losses,
                               rtol=1e-5, atol=1e-6)


def test_per_sample_loss_is_in_inference_mode():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dropout(0.9),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    first = per_sample_loss(model, X, LABELS)
    np.testing.assert_array_equal(first, per_sample_loss(model, X, LABELS))
    np.testing.assert_allclose(first, keras_losses(model, X, LABELS), rtol=1e-5, atol=1e-6)


def test_per_sample_loss_of_several_outputs_is_their_weighted_sum():
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(8, activation="tanh")(inputs)
    model = keras.Model(inputs, {
        "a": keras.layers.Dense(3, activation="softmax", name="a")(hidden),
        "b": keras.layers.Dense(1, name="b")(hidden),
    })
    model.compile("sgd", loss={"a": "categorical_crossentropy", "b": "mse"},
                  loss_weights={"a": 1.0, "b": 0.5})
    targets = {"a": one_hot(LABELS, 3), "b": X[:, :1]}
    outputs = keras.tree.map_structure(keras.ops.convert_to_numpy, model(X, training=False))
    cross_entropy = -np.log(outputs["a"][np.arange(len(X)), LABELS])
    expected = cross_entropy + 0.5 * (X[:, 0] - outputs["b"][:, 0]) ** 2
    np.testing.assert_allclose(per_sample_loss(model, X, targets), expected,
                               rtol=1e-5, atol=1e-6)


def test_per_sample_loss_reads_datasets_and_streams():
    import tensorflow as tf

    model = make_classifier(2, 3, loss="sparse_categorical_crossentropy")
    expected = per_sample_loss(model, X, LABELS)
    dataset = InMemoryDataset(X, LABELS, categorical=False)
    np.testing.assert_allclose(per_sample_loss(model, dataset), expected, rtol=1e-5, atol=1e-6)
    stream = tf.data.Dataset.from_tensor_slices((X, LABELS)).batch(50)
    np.testing.assert_allclose(per_sample_loss(model, stream), expected, rtol=1e-5, atol=1e-6)


def test_per_sample_loss_refuses_uncompiled_models_and_missing_targets():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="compile"):
        per_sample_loss(model, X, LABELS)
    model = make_classifier(2, 3, loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="`y` is required"):
        per_sample_loss(model, X)


def test_a_model_overriding_compute_loss_gets_a_warning():
    class Custom(keras.Sequential):
        def compute_loss(self, *args, **kwargs):
            return 2 * super().compute_loss(*args, **kwargs)

    model = Custom([keras.Input((2,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.warns(UserWarning, match="overrides `compute_loss`"):
        per_sample_loss(model, X, LABELS)


def test_ranking_is_by_descending_loss_ties_by_index():
    losses = np.array([0.5, 2.0, 0.5, 3.0, 2.0, 0.1], dtype="float32")
    ranking = rank_by_loss(losses)
    np.testing.assert_array_equal(ranking.indices, [3, 1, 4, 0, 2, 5])
    np.testing.assert_array_equal(ranking.sorted_losses, losses[[3, 1, 4, 0, 2, 5]])
    np.testing.assert_array_equal(ranking.losses, losses)


def test_rankings_of_a_model_reproduce():
    model = make_classifier(2, 3, loss="sparse_categorical_crossentropy")
    first, second = rank_by_loss(model, X, LABELS), rank_by_loss(model, X, LABELS)
    np.testing.assert_array_equal(first.indices, second.indices)
    assert np.all(np.diff(first.sorted_losses) <= 0)


def planted_data(count=400, planted=40, seed=0):
    """Well separated blobs with `planted` labels changed to another class."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, size=count)
    centers = np.array([[0.0, 4.0], [4.0, -3.0], [-4.0, -3.0]])
    x = (centers[labels] + rng.normal(size=(count, 2))).astype("float32")
    wrong = rng.choice(count, size=planted, replace=False)
    noisy = labels.copy()
    noisy[wrong] = (labels[wrong] + rng.integers(1, 3, size=planted)) % 3
    return x, noisy, wrong


def test_planted_mislabelled_samples_rank_at_the_top():
    x, y, wrong = planted_data()
    model = make_classifier(2, 3, loss="sparse_categorical_crossentropy", learning_rate=0.02)
    model.fit(x, y, batch_size=32, epochs=8, verbose=0)
    ranking = rank_by_loss(model, x, y)
    top = set(ranking.indices[:len(wrong)].tolist())
    assert len(top & set(wrong.tolist())) >= 0.6 * len(wrong)


def brute_force_mass(losses, fraction, from_top):
    """The smallest set carrying `fraction` of the loss, over all subsets.

    From the top, any set will do; from the bottom, the set must hold
    lower losses than all that it leaves out.
    """
    total = losses.sum()
    count = len(losses)
    for size in range(1, count + 1):
        for subset in itertools.combinations(range(count), size):
            chosen = np.zeros(count, dtype=bool)
            chosen[list(subset)] = True
            if losses[chosen].sum() < fraction * total * (1 - 1e-12):
                continue
            if not from_top and not chosen.all() and \
                    losses[chosen].max() > losses[~chosen].min():
                continue
            return size, losses[chosen].sum()
    raise AssertionError("unreachable")


@pytest.mark.parametrize("from_top", [True, False])
def test_the_mass_set_is_the_smallest_that_carries_the_fraction(from_top):
    rng = np.random.default_rng(3)
    for trial in range(12):
        losses = rng.exponential(size=9).round(2)
        for fraction in (0.1, 0.3, 0.5, 0.77, 1.0):
            chosen = select_mass(losses, fraction, from_top=from_top)
            size, _ = brute_force_mass(losses, fraction, from_top)
            assert len(chosen) == size, (losses, fraction)
            assert losses[chosen].sum() >= fraction * losses.sum() * (1 - 1e-12)
            assert len(set(chosen.tolist())) == len(chosen)
            rest = np.setdiff1d(np.arange(len(losses)), chosen)
            if len(rest):
                if from_top:
                    assert losses[chosen].min() >= losses[rest].max()
                else:
                    assert losses[chosen].max() <= losses[rest].min()


def test_the_percentile_set_is_the_top_or_bottom_share_of_instances():
    losses = np.arange(20, dtype="float32")[::-1].copy()
    np.testing.assert_array_equal(select_percentile(losses, 0.25), [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(select_percentile(losses, 0.25, from_top=False),
                                  [19, 18, 17, 16, 15])
    assert len(select_percentile(losses, 0.01)) == 1
    with pytest.raises(ValueError, match="fraction"):
        select_percentile(losses, 0.0)


@pytest.mark.parametrize("bins", ["quantile", "range"])
def test_the_decile_table_sums_to_the_dataset(bins, capsys):
    model = make_classifier(2, 3, loss="sparse_categorical_crossentropy")
    report = loss_report(model, X, LABELS, class_names=["a", "b", "c"], top=5, bins=bins)
    assert len(report.bins) == 10
    assert sum(b.count for b in report.bins) == len(X)
    counts = np.array([b.label_counts for b in report.bins])
    np.testing.assert_array_equal(counts.sum(axis=0), np.bincount(LABELS, minlength=3))
    losses = per_sample_loss(model, X, LABELS)
    if bins == "quantile":
        assert {b.count for b in report.bins} == {30}
        # the first bin holds the 30 highest losses, and its labels are theirs
        top = np.argsort(-losses, kind="stable")[:30]
        np.testing.assert_array_equal(report.bins[0].label_counts,
                                      np.bincount(LABELS[top], minlength=3))
    else:
        width = (losses.max() - losses.min()) / 10
        assert report.bins[0].high == pytest.approx(losses.max())
        assert report.bins[0].high - report.bins[0].low == pytest.approx(width)
        assert report.bins[0].count == np.sum(losses >= losses.max() - width - 1e-7)
    for b in report.bins:
        if b.count:
            assert b.label_counts[b.most_frequent] == max(b.label_counts)
    np.testing.assert_array_equal(report.hardest, np.argsort(-losses, kind="stable")[:5])
    np.testing.assert_array_equal(report.easiest, np.argsort(-losses, kind="stable")[::-1][:5])
    output = capsys.readouterr().out
    assert "Hardest 5 of 300" in output and "most frequent" in output
    assert output.count("\n") > 25


def test_the_report_figure_is_saved(tmp_path):
    model = make_classifier(2, 3)
    report = loss_report(model, X, one_hot(LABELS, 3), print_table=False)
    assert report.labels is not None
    path = tmp_path / "report.png"
    plot_loss_report(report, path)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_the_console_command_reports_a_saved_model(tmp_path, capsys):
    model = make_classifier(2, 3, loss="sparse_categorical_crossentropy")
    model.save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", x=X, y=LABELS, class_names=np.array(["a", "b", "c"]))
    report = report_run([str(tmp_path / "model.keras"), str(tmp_path / "data.npz"),
                          "--top", "3", "--json", str(tmp_path / "r.json"),
                          "--plot", str(tmp_path / "r.png")])
    np.testing.assert_allclose(report.losses, per_sample_loss(model, X, LABELS),
                               rtol=1e-5, atol=1e-6)
    saved = json.loads((tmp_path / "r.json").read_text())
    assert len(saved["hardest"]) == 3 and saved["hardest"][0]["label"] in "abc"
    assert sum(b["count"] for b in saved["bins"]) == len(X)
    assert (tmp_path / "r.png").exists()
    assert "Hardest 3 of 300" in capsys.readouterr().out
    assert report_main([str(tmp_path / "model.keras"), str(tmp_path / "data.npz")]) == 0


def test_the_console_command_explains_a_bad_data_file(tmp_path, capsys):
    make_classifier(2, 3).save(tmp_path / "model.keras")
    np.savez(tmp_path / "data.npz", inputs=X)
    with pytest.raises(SystemExit):
        report_main([str(tmp_path / "model.keras"), str(tmp_path / "data.npz")])
    assert "no array x nor y" in capsys.readouterr().err
