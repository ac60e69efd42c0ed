import inspect
import re

import keras
import numpy as np
import pytest
from conftest import blobs, make_classifier, one_hot

from importance_sampling import signals
from importance_sampling.datasets import InMemoryDataset
from importance_sampling.training import ApproximateImportanceTraining, ImportanceTraining

X, LABELS = blobs(256, num_classes=3)
Y = one_hot(LABELS, 3)
X_VAL, LABELS_VAL = blobs(64, num_classes=3, seed=1)
Y_VAL = one_hot(LABELS_VAL, 3)


@pytest.mark.parametrize("training", [ImportanceTraining, ApproximateImportanceTraining])
def test_fit_trains_the_users_model_in_place_and_returns_a_history(training):
    model = make_classifier(2, 3, loss="categorical_crossentropy")
    before = model.get_weights()
    history = training(model, presample=128).fit(
        X, Y, batch_size=16, epochs=2, verbose=0, validation_data=(X_VAL, Y_VAL)
    )
    assert isinstance(history, keras.callbacks.History)
    assert set(history.history) == {"loss", "unbiased_loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(values) == 2 for values in history.history.values())
    assert history.params["steps"] == 256 // 16
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert int(model.optimizer.iterations) == 2 * (256 // 16)
    val_loss, val_accuracy = model.evaluate(X_VAL, Y_VAL, verbose=0)
    assert history.history["val_loss"][-1] == pytest.approx(val_loss, rel=1e-5)
    assert history.history["val_accuracy"][-1] == pytest.approx(val_accuracy)


def test_trained_model_round_trips_through_keras_save(tmp_path):
    model = make_classifier(2, 3)
    ImportanceTraining(model, presample=64).fit(X, Y, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.models.load_model(path)
    np.testing.assert_allclose(restored.predict(X, verbose=0), model.predict(X, verbose=0),
                               rtol=1e-6)
    # the restored model trains on with importance sampling
    ImportanceTraining(restored, presample=64).fit(X, Y, batch_size=16, epochs=1, verbose=0)


def test_verbose_one_shows_the_keras_progress_bar(capsys):
    model = make_classifier(2, 3)
    ImportanceTraining(model, presample=64).fit(X, Y, batch_size=32, epochs=1, verbose=1)
    shown = capsys.readouterr().out
    assert "8/8" in shown and "loss:" in shown and "accuracy:" in shown
    ImportanceTraining(model, presample=64).fit(X, Y, batch_size=32, epochs=1, verbose=0)
    assert capsys.readouterr().out == ""


def test_the_epoch_lines_show_the_numbers_of_the_history(capsys):
    model = make_classifier(2, 3)
    history = ImportanceTraining(model, presample=64).fit(
        X, Y, batch_size=32, epochs=2, verbose=2, validation_split=0.25
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if "val_loss" in line]
    assert len(lines) == 2
    for epoch, line in enumerate(lines):
        shown = dict(re.findall(r"(\w+): ([0-9.e+-]+)", line))
        for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert float(shown[name]) == pytest.approx(history.history[name][epoch],
                                                       abs=5e-4)


def test_validation_split_holds_out_the_last_samples():
    model = make_classifier(2, 3)
    history = ImportanceTraining(model, presample=64).fit(
        X, Y, batch_size=16, epochs=1, verbose=0, validation_split=0.25
    )
    assert history.params["steps"] == 192 // 16
    assert history.history["val_loss"][0] == pytest.approx(
        model.evaluate(X[192:], Y[192:], verbose=0)[0], rel=1e-5
    )


def test_validation_data_overrides_validation_split():
    model = make_classifier(2, 3)
    history = ImportanceTraining(model, presample=64).fit(
        X, Y, batch_size=16, epochs=1, verbose=0, validation_split=0.25,
        validation_data=(X[:40], Y[:40]),
    )
    assert history.params["steps"] == len(X) // 16
    assert history.history["val_loss"][0] == pytest.approx(
        model.evaluate(X[:40], Y[:40], verbose=0)[0], rel=1e-5
    )


@pytest.mark.parametrize(
    "loss, targets, num_classes",
    [
        ("categorical_crossentropy", Y, 3),
        ("sparse_categorical_crossentropy", LABELS, 3),
        ("binary_crossentropy", (LABELS > 0).astype("float32"), 1),
    ],
    ids=["one-hot", "sparse", "binary"],
)
def test_target_kinds_train_and_lower_the_loss(loss, targets, num_classes):
    model = make_classifier(2, num_classes, loss=loss)
    start = model.evaluate(X, targets, verbose=0)[0]
    ImportanceTraining(model, presample=128).fit(X, targets, batch_size=32, epochs=4, verbose=0)
    assert model.evaluate(X, targets, verbose=0)[0] < start


def test_a_model_with_a_list_of_inputs_trains():
    left, right = keras.Input((1,)), keras.Input((1,))
    hidden = keras.layers.Dense(8, activation="tanh")(keras.layers.Concatenate()([left, right]))
    model = keras.Model([left, right], keras.layers.Dense(3, activation="softmax")(hidden))
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    history = ImportanceTraining(model, presample=64).fit(
        [X[:, :1], X[:, 1:]], Y, batch_size=16, epochs=1, verbose=0,
        validation_data=([X_VAL[:, :1], X_VAL[:, 1:]], Y_VAL),
    )
    assert "val_accuracy" in history.history


def test_fit_generator_reads_batches_from_a_stream():
    def batches():
        rng = np.random.default_rng(0)
        while True:
            idxs = rng.integers(0, len(X), size=10)
            yield X[idxs], Y[idxs]

    model = make_classifier(2, 3)
    history = ImportanceTraining(model, presample=64).fit_generator(
        batches(), steps_per_epoch=5, batch_size=16, epochs=2, verbose=0,
        validation_data=batches(), validation_steps=3,
    )
    assert len(history.history["val_loss"]) == 2
    assert int(model.optimizer.iterations) == 10


def test_approximate_training_refuses_generators():
    training = ApproximateImportanceTraining(make_classifier(2, 3))
    with pytest.raises(NotImplementedError, match="needs the class of every sample"):
        training.fit_generator(iter([]), steps_per_epoch=1)


def test_fit_dataset_defaults_to_an_epoch_of_the_training_set():
    model = make_classifier(2, 3)
    dataset = InMemoryDataset(X, LABELS, X_VAL, LABELS_VAL)
    history = ImportanceTraining(model, presample=64).fit_dataset(dataset, batch_size=32, verbose=0)
    assert history.params["steps"] == 8 and "val_loss" in history.history


def assert_refused_untouched(model, match, make_training, **fit_kwargs):
    before = model.get_weights()
    with pytest.raises(ValueError, match=match):
        make_training(model).fit(verbose=0, **fit_kwargs)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize(
    "match, training_kwargs, fit_kwargs",
    [
        ("same number of samples", {}, {"x": X, "y": Y[:-1]}),
        ("batch_size=512 for 256 training samples", {"presample": 1024},
         {"x": X, "y": Y, "batch_size": 512}),
        ("presample=64, batch_size=64", {"presample": 64}, {"x": X, "y": Y, "batch_size": 64}),
        ("validation_split=1.5", {}, {"x": X, "y": Y, "validation_split": 1.5}),
    ],
    ids=["lengths", "batch-size", "presample", "validation-split"],
)
def test_bad_fit_arguments_are_refused_before_any_step(match, training_kwargs, fit_kwargs):
    model = make_classifier(2, 3)
    assert_refused_untouched(
        model, match, lambda m: ImportanceTraining(m, **training_kwargs), **fit_kwargs
    )
    assert int(model.optimizer.iterations) == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [({"k": 2.0}, "Received: k=2.0"), ({"smooth": -0.5}, "Received: smooth=-0.5"),
     ({"presample": 0}, "Received: presample=0")],
)
def test_bad_training_arguments_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImportanceTraining(make_classifier(2, 3), **kwargs)


def test_uncompiled_model_is_refused():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="must be compiled"):
        ImportanceTraining(model)


def test_nan_losses_fall_back_to_uniform_and_reach_terminate_on_nan():
    x = X.copy()
    x[::2] = np.nan
    model = make_classifier(2, 3)
    with pytest.warns(RuntimeWarning, match="sampled uniformly"):
        history = ImportanceTraining(model, presample=64).fit(
            x, Y, batch_size=32, epochs=3, verbose=0,
            callbacks=[keras.callbacks.TerminateOnNaN()],
        )
    assert np.isnan(history.history["loss"][0])
    assert int(model.optimizer.iterations) == 1


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({}, ["ModelSampler"]),
        ({"smooth": 0.5}, ["AdditiveSmoothingSampler", "ModelSampler"]),
        ({"smooth": 0.5, "adaptive_smoothing": True},
         ["AdaptiveAdditiveSmoothingSampler", "ModelSampler"]),
        ({"adaptive_smoothing": True}, ["ModelSampler"]),
    ],
)
def test_smoothing_arguments_choose_the_sampler(kwargs, expected):
    training = ImportanceTraining(make_classifier(2, 3), **kwargs)
    sampler = training._make_sampler(InMemoryDataset(X, Y), 256, 32)
    chain = []
    while sampler is not None:
        chain.append(type(sampler).__name__)
        sampler = getattr(sampler, "sampler", None)
    assert chain == expected


def test_signals_announce_the_steps_with_their_payloads():
    events = {name: [] for name in ("sample", "score", "training", "evaluation", "evaluate_batch")}
    receivers = {name: (lambda event, name=name: events[name].append(event)) for name in events}
    for name, receiver in receivers.items():
        getattr(signals, name).connect(receiver)
    try:
        model = make_classifier(2, 3)
        ImportanceTraining(model, presample=64).fit(
            X, Y, batch_size=32, epochs=1, verbose=0, validation_data=(X_VAL, Y_VAL)
        )
    finally:
        for name, receiver in receivers.items():
            getattr(signals, name).disconnect(receiver)
    assert len(events["sample"]) == len(events["score"]) == len(events["training"]) == 8
    sample = events["sample"][0]
    assert set(sample) == {"idxs", "xy", "w", "predicted_scores"}
    np.testing.assert_array_equal(sample["xy"][0], X[sample["idxs"]])
    assert sample["w"].shape == (32, 1) and sample["predicted_scores"].shape == (32,)
    assert events["score"][0]["scores"].shape == (64,)
    assert events["training"][0]["scores"].shape == (32,)
    assert set(events["training"][0]["metrics"]) == {"loss", "unbiased_loss", "accuracy"}
    assert len(events["evaluation"]) == 1 and "loss" in events["evaluation"][0]["logs"]
    assert len(events["evaluate_batch"]) == 2  # 64 validation samples in batches of 32


def test_a_custom_train_step_is_reported_before_training():
    class CustomStep(keras.Sequential):
        def train_step(self, data):
            return super().train_step(data)

    model = CustomStep([keras.Input((2,)), keras.layers.Dense(3, activation="softmax")])
    model.compile("adam", "categorical_crossentropy")
    with pytest.warns(UserWarning, match="overrides `train_step`"):
        ImportanceTraining(model)


def test_fit_takes_the_arguments_of_keras_model_fit():
    ours = list(inspect.signature(ImportanceTraining.fit).parameters)[1:]
    theirs = list(inspect.signature(keras.Model.fit).parameters)[1:]
    assert ours == theirs
    assert ApproximateImportanceTraining.fit is ImportanceTraining.fit


def test_a_float_presample_scores_a_multiple_of_the_batch_size(monkeypatch):
    training = ImportanceTraining(make_classifier(2, 3), presample=3.0)
    assert training._presample_size(32) == 96
    assert training._presample_size(256) == 768
    with pytest.raises(ValueError, match="presample=3.0"):
        ImportanceTraining(make_classifier(2, 3), presample=256).fit(
            X, Y, batch_size=256, verbose=0
        )
    model = make_classifier(2, 3)
    with pytest.raises(ValueError, match=r"float .*presample=3\.0"):
        ImportanceTraining(model, presample=256).fit(X, Y, batch_size=256, verbose=0)
    ImportanceTraining(model, presample=1.5).fit(X, Y, batch_size=256, verbose=0)
    assert int(model.optimizer.iterations) == 1


def test_the_models_own_train_step_and_function_are_back_after_fit():
    model = make_classifier(2, 3)
    model.fit(X, Y, epochs=1, verbose=0)
    own_function = model.train_function
    ImportanceTraining(model, presample=64).fit(X, Y, batch_size=32, verbose=0)
    assert "train_step" not in vars(model)
    assert model.train_function is own_function
    with pytest.raises(ValueError):
        ImportanceTraining(model, presample=64).fit(X, Y, batch_size=32, verbose=0,
                                                    callbacks=[RaiseAtStep()])
    assert "train_step" not in vars(model) and model.train_function is own_function


class RaiseAtStep(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        raise ValueError("stop")


class ZeroLossModel(keras.Sequential):
    """A model whose `compute_loss` override makes every step a no-op."""

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        loss = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        return loss * 0.0


def test_the_train_step_minimises_the_models_own_compute_loss():
    model = ZeroLossModel([keras.Input((2,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.SGD(0.5), "categorical_crossentropy")
    before = model.get_weights()
    ImportanceTraining(model, presample=64).fit(X, Y, batch_size=32, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == len(X) // 32
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_a_run_resumed_from_a_saved_model_draws_as_the_uninterrupted_run(tmp_path):
    def trainer(model):
        keras.utils.set_random_seed(7)
        return ImportanceTraining(model, presample=64)

    keras.utils.set_random_seed(3)
    model = make_classifier(2, 3)
    initial = model.get_weights()
    trainer(model).fit(X, Y, batch_size=32, epochs=3, verbose=0)

    interrupted = make_classifier(2, 3)
    interrupted.set_weights(initial)
    trainer(interrupted).fit(X, Y, batch_size=32, epochs=2, verbose=0)
    interrupted.save(tmp_path / "model.keras")
    resumed = keras.saving.load_model(tmp_path / "model.keras")
    trainer(resumed).fit(X, Y, batch_size=32, epochs=3, initial_epoch=2, verbose=0)

    assert int(resumed.optimizer.iterations) == int(model.optimizer.iterations)
    for expected, actual in zip(model.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)
