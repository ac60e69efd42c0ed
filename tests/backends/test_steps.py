"""The importance-sampling step on every backend: it trains, weighs, keeps the
BatchNorm statistics of inference-mode scoring out, and leaves the model its own."""

import contextlib
import itertools

import keras
import numpy as np
import pytest
from conftest import blobs, expected_sgd_step, make_classifier, one_hot, sgd_classifier

from importance_sampling.model_wrappers import OracleWrapper
from importance_sampling.reweighting import BiasedReweightingPolicy
from importance_sampling.training import ApproximateImportanceTraining, ImportanceTraining

from .common import ArrayBatches, bn_dropout_classifier, host_steps, weights_changed

X, LABELS = blobs(256, num_classes=3)
Y = one_hot(LABELS, 3)


# Training lowers the loss


@pytest.mark.parametrize(
    "training, kwargs, source",
    [
        (ImportanceTraining, {}, "arrays"),
        (ImportanceTraining, {}, "py_dataset"),
        (ImportanceTraining, {"smooth": 0.5, "adaptive_smoothing": True}, "arrays"),
        (ApproximateImportanceTraining, {}, "arrays"),
    ],
    ids=["in-step-arrays", "in-step-py-dataset", "host-adaptive-smoothing", "approximate"],
)
def test_training_lowers_the_loss_of_a_model_with_dropout_and_batchnorm(
        training, kwargs, source):
    model = bn_dropout_classifier()
    start = model.evaluate(X, Y, verbose=0)[0]
    data = (X, Y) if source == "arrays" else (ArrayBatches(X, Y, batch_size=16), None)
    history = training(model, presample=64, **kwargs).fit(
        *data, batch_size=16, epochs=2, verbose=0
    )
    steps = 256 // 16 if source == "arrays" else 256 // 64
    assert int(model.optimizer.iterations) == 2 * steps
    assert np.all(np.isfinite(history.history["loss"]))
    assert model.evaluate(X, Y, verbose=0)[0] < 0.9 * start


# The weights of a step: every step it can take, by hand


# Four points close to the origin: their losses stay of one order, so that
# batches of several distinct points are drawn.
POINTS_X = np.array([[0.6, -0.3], [-0.4, 0.5], [0.1, 0.7], [-0.5, -0.4]], "float32")
POINTS_LABELS = np.array([0, 1, 2, 1])
CLASS_WEIGHT = {0: 0.5, 1: 2.0, 2: 1.25}
SAMPLE_WEIGHT = np.array([1.5, 0.25, 3.0, 0.75], "float32")


def possible_steps(model, user_weights, presample, batch_size, k, learning_rate):
    """Every `(candidates, batch, loss, weights)` that one step on `POINTS_*` can end at.

    The candidates are `presample` of the points (with repetitions) and the
    batch `batch_size` of the candidates; each item of the batch is weighed
    by the biased importance weight of `BiasedReweightingPolicy(k)` times its
    user weight, and the model takes one SGD step on that weighted loss.
    """
    losses = np.array([
        expected_sgd_step(model, POINTS_X[i:i + 1], POINTS_LABELS[i:i + 1], [1.0], 0.0)[0]
        for i in range(len(POINTS_X))
    ])
    steps = []
    for candidates in itertools.combinations_with_replacement(range(len(POINTS_X)), presample):
        mean = losses[list(candidates)].mean()
        for batch in itertools.combinations_with_replacement(sorted(set(candidates)), batch_size):
            batch = list(batch)
            chosen = losses[batch]
            unbiased = mean / chosen
            biased = unbiased**k * np.sum(unbiased * chosen) / np.sum(unbiased**k * chosen)
            loss, weights = expected_sgd_step(
                model, POINTS_X[batch], POINTS_LABELS[batch], biased * user_weights[batch],
                learning_rate,
            )
            steps.append((candidates, batch, loss, weights))
    return steps


@pytest.mark.parametrize(
    "source, k",
    [("arrays", 0.5), ("arrays", 1.0), ("sample_weight", 0.5),
     ("class_weight", 0.5), ("py_dataset", 0.5), ("host", 0.5)],
)
def test_a_step_is_an_sgd_step_on_the_drawn_batch_with_the_biased_weights(source, k):
    model = sgd_classifier(learning_rate=0.5)
    training = ImportanceTraining(model, k=k, presample=5)
    user_weights = np.ones(len(POINTS_X), "float32")
    kwargs = {"x": POINTS_X, "y": POINTS_LABELS, "steps_per_epoch": 1}
    if source == "sample_weight":
        user_weights = SAMPLE_WEIGHT
        kwargs["sample_weight"] = SAMPLE_WEIGHT
    elif source == "class_weight":
        user_weights = np.array([CLASS_WEIGHT[c] for c in POINTS_LABELS], "float32")
        kwargs["class_weight"] = CLASS_WEIGHT
    drawn_distinct_items = False
    for step in range(4):
        expected = possible_steps(model, user_weights, 5, 4, k, 0.5)
        if source == "py_dataset":
            rows = [0, 1, 2, 3, 1]  # the candidates of the step, read in order
            kwargs = {"x": ArrayBatches(POINTS_X[rows], POINTS_LABELS[rows], batch_size=5)}
        with host_steps() if source == "host" else contextlib.nullcontext():
            history = training.fit(batch_size=4, verbose=0, **kwargs)
        trained = model.get_weights()
        matches = [
            (candidates, batch, loss) for candidates, batch, loss, weights in expected
            if all(np.allclose(new, want, rtol=1e-4, atol=1e-6)
                   for new, want in zip(trained, weights))
        ]
        assert len(matches) == 1, f"step {step}: {len(matches)} hand-computed steps match"
        (candidates, batch, loss), = matches
        if source == "py_dataset":
            assert sorted(candidates) == [0, 1, 1, 2, 3]
        assert history.history["loss"][0] == pytest.approx(loss, rel=1e-5)
        drawn_distinct_items |= len(set(batch)) > 1
    assert int(model.optimizer.iterations) == 4
    # where all the items of a batch are the same point, k makes no difference
    assert drawn_distinct_items


def test_train_batch_is_an_sgd_step_with_the_weights_given():
    model = sgd_classifier(learning_rate=0.5)
    x, labels = X[:8], LABELS[:8]
    w = np.linspace(0.2, 2.0, 8).astype("float32")
    loss, expected = expected_sgd_step(model, x, labels, w * 3.0, 0.5)
    wrapper = OracleWrapper(model, BiasedReweightingPolicy(0.5))
    logged, _, _ = wrapper.train_batch(x, labels, w[:, None],
                                       sample_weight=np.full(8, 3.0, "float32"))
    assert logged == pytest.approx(loss, rel=1e-5)
    for new, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(new, want, rtol=1e-4, atol=1e-6)


# BatchNorm: the candidates are scored in inference mode


BN_X = np.tile(np.array([[2.0, -1.0]], "float32"), (16, 1))
BN_LABELS = np.arange(16) % 3


def batchnorm_first_model():
    model = keras.Sequential([
        keras.Input((2,)),
        keras.layers.BatchNormalization(momentum=0.5),
        keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    return model


def moving_statistics(model):
    layer = model.layers[0]
    return (keras.ops.convert_to_numpy(layer.moving_mean),
            keras.ops.convert_to_numpy(layer.moving_variance))


@pytest.mark.parametrize("source", ["arrays", "py_dataset", "host"])
def test_one_step_moves_the_batchnorm_statistics_once_scoring_not_at_all(source):
    # All inputs are the same point: one training-mode pass of momentum 0.5
    # takes the moving mean from 0 half way to it and the moving variance
    # from 1 half way to 0; a second pass (a scoring in training mode) would
    # take them further.
    model = batchnorm_first_model()
    training = ImportanceTraining(model, presample=16)
    if source == "py_dataset":
        data = {"x": ArrayBatches(BN_X, BN_LABELS, batch_size=8)}
    else:
        data = {"x": BN_X, "y": BN_LABELS, "steps_per_epoch": 1}
    with host_steps() if source == "host" else contextlib.nullcontext():
        training.fit(batch_size=4, verbose=0, **data)
    assert int(model.optimizer.iterations) == 1
    mean, variance = moving_statistics(model)
    np.testing.assert_allclose(mean, [1.0, -0.5], rtol=1e-5)
    np.testing.assert_allclose(variance, [0.5, 0.5], rtol=1e-5)


def test_the_wrapper_scores_without_moving_the_statistics_and_trains_moving_them():
    model = batchnorm_first_model()
    wrapper = OracleWrapper(model, BiasedReweightingPolicy(0.5))
    wrapper.score(BN_X, BN_LABELS, batch_size=8)
    wrapper.score(BN_X, BN_LABELS)
    mean, variance = moving_statistics(model)
    np.testing.assert_array_equal(mean, [0.0, 0.0])
    np.testing.assert_array_equal(variance, [1.0, 1.0])
    wrapper.train_batch(BN_X[:4], BN_LABELS[:4], np.ones((4, 1), "float32"))
    mean, variance = moving_statistics(model)
    np.testing.assert_allclose(mean, [1.0, -0.5], rtol=1e-5)
    np.testing.assert_allclose(variance, [0.5, 0.5], rtol=1e-5)


# The model is the user's


def test_the_model_is_trained_in_place_and_round_trips_through_save(tmp_path):
    model = bn_dropout_classifier()
    before = model.get_weights()
    ImportanceTraining(model, presample=64).fit(X, Y, batch_size=16, epochs=1, verbose=0)
    assert int(model.optimizer.iterations) == 16
    trained = model.get_weights()
    # the kernels, biases and moving statistics all moved
    assert all(not np.array_equal(a, b) for a, b in zip(before, trained))
    model.save(tmp_path / "model.keras")
    restored = keras.saving.load_model(tmp_path / "model.keras")
    assert restored is not model
    for saved, loaded in zip(trained, restored.get_weights()):
        np.testing.assert_array_equal(saved, loaded)
    np.testing.assert_allclose(restored.predict(X, verbose=0), model.predict(X, verbose=0),
                               rtol=1e-5, atol=1e-6)
    assert int(restored.optimizer.iterations) == 16
    ImportanceTraining(restored, presample=64).fit(X, Y, batch_size=16, epochs=1, verbose=0)
    assert int(restored.optimizer.iterations) == 32
    assert weights_changed(trained, restored)
    for saved, kept in zip(trained, model.get_weights()):
        np.testing.assert_array_equal(saved, kept)


class RaiseAtStep(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        raise RuntimeError("stop")


@pytest.mark.parametrize("path", ["in-step", "host"])
def test_the_models_own_train_step_and_function_are_back_after_fit(path):
    model = sgd_classifier(learning_rate=0.5)
    model.fit(X, LABELS, batch_size=256, epochs=1, verbose=0)
    own_function = model.train_function
    with host_steps() if path == "host" else contextlib.nullcontext():
        ImportanceTraining(model, presample=64).fit(X, LABELS, batch_size=32, verbose=0)
        assert "train_step" not in vars(model)
        assert model.train_function is own_function
        with pytest.raises(RuntimeError, match="stop"):
            ImportanceTraining(model, presample=64).fit(X, LABELS, batch_size=32, verbose=0,
                                                        callbacks=[RaiseAtStep()])
    assert "train_step" not in vars(model)
    assert model.train_function is own_function
    # Keras's fit takes the model's own step: one unweighted step on all the data
    iterations = int(model.optimizer.iterations)
    loss, expected = expected_sgd_step(model, X, LABELS, np.ones(len(X)), 0.5)
    history = model.fit(X, LABELS, batch_size=256, epochs=1, shuffle=False, verbose=0)
    assert int(model.optimizer.iterations) == iterations + 1
    assert history.history["loss"][0] == pytest.approx(loss, rel=1e-5)
    for new, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(new, want, rtol=1e-4, atol=1e-6)


def test_a_model_with_nothing_to_train_warns_as_keras_does():
    model = make_classifier(2, 3)
    model.trainable = False
    model.compile(keras.optimizers.SGD(0.1), "categorical_crossentropy")
    before = model.get_weights()
    with pytest.warns(UserWarning, match="does not have any trainable weights"):
        ImportanceTraining(model, presample=64).fit(X, Y, batch_size=32, verbose=0)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
