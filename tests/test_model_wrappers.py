import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import blobs, make_classifier, one_hot

from importance_sampling.model_wrappers import OracleWrapper
from importance_sampling.reweighting import (
    AdjustedBiasedReweightingPolicy,
    BiasedReweightingPolicy,
    NoReweightingPolicy,
)

X, LABELS = blobs(64, num_classes=3)
TARGETS = {
    "categorical_crossentropy": one_hot(LABELS, 3),
    "sparse_categorical_crossentropy": LABELS,
}


def keras_per_sample(loss_name, y, y_pred):
    loss = keras.losses.get(loss_name)
    return np.asarray(loss(y, y_pred))


@pytest.mark.parametrize("loss", sorted(TARGETS))
def test_loss_scores_are_the_per_sample_compiled_loss(loss):
    model = make_classifier(2, 3, loss=loss)
    scores = OracleWrapper(model, NoReweightingPolicy()).score(X, TARGETS[loss], batch_size=20)
    expected = keras_per_sample(loss, TARGETS[loss], model.predict(X, verbose=0))
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


def test_binary_targets_with_a_sigmoid_output():
    model = make_classifier(2, 1, loss="binary_crossentropy")
    y = (LABELS > 0).astype("float32")
    scores = OracleWrapper(model, NoReweightingPolicy()).score(X, y)
    p = model.predict(X, verbose=0)[:, 0]
    expected = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    np.testing.assert_allclose(scores, expected, rtol=1e-4)


@pytest.mark.parametrize(
    "loss",
    [
        keras.losses.CategoricalCrossentropy(reduction="sum"),
        keras.losses.CategoricalCrossentropy(reduction=None),
        lambda y_true, y_pred: keras.losses.categorical_crossentropy(y_true, y_pred),
    ],
    ids=["loss-object-sum", "loss-object-none", "callable"],
)
def test_loss_objects_and_callables_give_per_sample_scores(loss):
    model = make_classifier(2, 3, loss=loss)
    y = one_hot(LABELS, 3)
    scores = OracleWrapper(model, NoReweightingPolicy()).score(X, y)
    expected = keras_per_sample("categorical_crossentropy", y, model.predict(X, verbose=0))
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)


def test_gnorm_is_the_norm_of_softmax_minus_target():
    model = make_classifier(2, 3)
    y = one_hot(LABELS, 3)
    scores = OracleWrapper(model, NoReweightingPolicy(), score="gnorm").score(X, y)
    expected = np.linalg.norm(model.predict(X, verbose=0) - y, axis=1)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-6)


def test_full_gnorm_is_the_per_sample_gradient_norm():
    model = make_classifier(2, 3)
    y = one_hot(LABELS[:6], 3)
    scores = OracleWrapper(model, NoReweightingPolicy(), score="full_gnorm").score(X[:6], y)
    expected = []
    for i in range(6):
        with tf.GradientTape() as tape:
            loss = keras.losses.categorical_crossentropy(y[i : i + 1], model(X[i : i + 1]))
        grads = tape.gradient(loss, model.trainable_variables)
        expected.append(np.sqrt(sum(np.sum(np.square(g)) for g in grads)))
    np.testing.assert_allclose(scores, expected, rtol=1e-4)


def test_acc_score_marks_the_misclassified_samples():
    model = make_classifier(2, 3, loss="sparse_categorical_crossentropy")
    scores = OracleWrapper(model, NoReweightingPolicy(), score="acc").score(X, LABELS)
    predicted = model.predict(X, verbose=0).argmax(axis=1)
    np.testing.assert_array_equal(scores, (predicted != LABELS).astype("float32"))


def test_train_batch_takes_one_weighted_step_of_the_users_optimizer():
    model = make_classifier(2, 3, loss="sparse_categorical_crossentropy")
    model.compile(keras.optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    x, y = X[:8], LABELS[:8]
    w = np.linspace(0.5, 2.0, 8).astype("float32")
    before = [v.numpy() for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        per_sample = keras.losses.sparse_categorical_crossentropy(y, model(x, training=True))
        expected_loss = tf.reduce_mean(w * per_sample)
    grads = tape.gradient(expected_loss, model.trainable_variables)

    wrapper = OracleWrapper(model, BiasedReweightingPolicy(1.0))
    loss, logs, scores = wrapper.train_batch(x, y, w[:, None])

    assert loss == pytest.approx(float(expected_loss), rel=1e-5)
    assert logs["loss"] == pytest.approx(loss)
    np.testing.assert_allclose(scores, per_sample, rtol=1e-5)
    for old, grad, new in zip(before, grads, model.trainable_variables):
        np.testing.assert_allclose(new.numpy(), old - 0.5 * grad.numpy(), rtol=1e-4, atol=1e-6)
    assert int(model.optimizer.iterations) == 1


def test_train_batch_adds_the_regularisation_losses():
    model = keras.Sequential([
        keras.Input((2,)),
        keras.layers.Dense(3, activation="softmax",
                           kernel_regularizer=keras.regularizers.L2(10.0)),
    ])
    model.compile("sgd", "sparse_categorical_crossentropy")
    kernel = model.layers[0].kernel.numpy()
    per_sample = OracleWrapper(model, NoReweightingPolicy()).score(X[:8], LABELS[:8])
    loss, _, _ = OracleWrapper(model, NoReweightingPolicy()).train_batch(
        X[:8], LABELS[:8], np.ones((8, 1))
    )
    expected = per_sample.mean() + 10.0 * np.sum(kernel**2)
    assert loss == pytest.approx(expected, rel=1e-4)


def test_adjusted_policy_recomputes_weights_inside_the_step():
    model = make_classifier(2, 3, loss="sparse_categorical_crossentropy")
    wrapper = OracleWrapper(model, AdjustedBiasedReweightingPolicy(1.0))
    x, y = X[:8], LABELS[:8]
    s = wrapper.score(x, y)
    # outside sum 0 and B = 8: unbiased weights mean(s)/s_i make the loss mean(s)
    summary = np.tile([8.0, 0.0], (8, 1)).astype("float32")
    loss, _, _ = wrapper.train_batch(x, y, summary)
    assert loss == pytest.approx(s.mean(), rel=1e-4)


def test_set_lr_changes_the_next_step():
    model = make_classifier(2, 3, loss="sparse_categorical_crossentropy")
    model.compile(keras.optimizers.SGD(0.1), "sparse_categorical_crossentropy")
    wrapper = OracleWrapper(model, NoReweightingPolicy())
    wrapper.set_lr(0.0)
    before = model.get_weights()
    wrapper.train_batch(X[:8], LABELS[:8], np.ones((8, 1)))
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert float(model.optimizer.learning_rate) == 0.0


def test_the_train_step_is_traced_once():
    model = make_classifier(2, 3, loss="sparse_categorical_crossentropy")
    wrapper = OracleWrapper(model, BiasedReweightingPolicy(0.5))
    for _ in range(5):
        wrapper.train_batch(X[:16], LABELS[:16], np.ones((16, 1)))
        wrapper.score(X, LABELS, batch_size=32)
    assert wrapper.trace_counts == {"score": 1, "train": 1}


def test_uncompiled_models_and_unknown_or_single_output_scores_are_refused():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="uncompiled model"):
        OracleWrapper(model, NoReweightingPolicy())
    inputs = keras.Input((2,))
    two = keras.Model(inputs, [keras.layers.Dense(1)(inputs), keras.layers.Dense(1)(inputs)])
    two.compile("sgd", ["mse", "mse"])
    for score in ("gnorm", "acc"):
        with pytest.raises(ValueError, match=f"score='{score}'.*2 outputs"):
            OracleWrapper(two, NoReweightingPolicy(), score=score)
    with pytest.raises(ValueError, match="score='entropy'"):
        OracleWrapper(make_classifier(), NoReweightingPolicy(), score="entropy")
