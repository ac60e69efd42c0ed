"""`OracleWrapper`'s scores on every backend, against scores computed by hand."""

import keras
import numpy as np
import pytest
from conftest import blobs, make_classifier, one_hot, sgd_gradients

from importance_sampling.model_wrappers import OracleWrapper
from importance_sampling.reweighting import BiasedReweightingPolicy

from .common import bn_dropout_classifier

X, LABELS = blobs(20, num_classes=3, seed=2)
Y = one_hot(LABELS, 3)


def probabilities(model, x):
    """The softmax output of a Dense-tanh, Dense-softmax model, by hand."""
    kernel_1, bias_1, kernel_2, bias_2 = (np.asarray(w, "float64") for w in model.get_weights())
    logits = np.tanh(np.asarray(x, "float64") @ kernel_1 + bias_1) @ kernel_2 + bias_2
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def hand_scores(kind, model, x, labels, p):
    """The scores of kind `kind` of the samples, given their predictions `p`."""
    rows = np.arange(len(labels))
    if kind == "loss":
        return -np.log(p[rows, labels])
    if kind == "gnorm":  # the gradient of the loss at the logits is p - y
        return np.linalg.norm(p - one_hot(labels, 3), axis=1)
    if kind == "acc":
        return (p.argmax(axis=1) != labels).astype("float64")
    if kind == "full_gnorm":
        norms = []
        for i in rows:
            _, gradients = sgd_gradients(model, x[i:i + 1], labels[i:i + 1], [1.0])
            norms.append(np.sqrt(sum(np.sum(g**2) for g in gradients)))
        return np.array(norms)
    raise ValueError(kind)


KINDS = ["loss", "gnorm", "full_gnorm", "acc"]


@pytest.mark.parametrize("targets", ["sparse", "one-hot"])
@pytest.mark.parametrize("kind", KINDS)
def test_scores_equal_the_hand_computed_ones(kind, targets):
    loss = ("sparse_categorical_crossentropy" if targets == "sparse"
            else "categorical_crossentropy")
    model = make_classifier(2, 3, loss=loss)
    y = LABELS if targets == "sparse" else Y
    wrapper = OracleWrapper(model, BiasedReweightingPolicy(0.5), score=kind)
    # 20 samples in forward batches of 8, 8 and 4
    scores = wrapper.score(X, y, batch_size=8)
    expected = hand_scores(kind, model, X, LABELS, probabilities(model, X))
    assert scores.shape == (20,) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-6)
    if kind == "acc":
        assert 0 < scores.sum() < 20  # some right, some wrong
    else:
        assert np.ptp(expected) > 0.1  # the samples differ


@pytest.mark.parametrize("kind", ["loss", "gnorm", "acc"])
def test_scores_are_taken_in_inference_mode(kind):
    # With Dropout, a training-mode pass scores at random; BatchNormalization
    # would normalise with the statistics of the batch of candidates.
    model = bn_dropout_classifier()
    model.fit(X, Y, epochs=2, batch_size=4, verbose=0)  # moving statistics away from 0, 1
    wrapper = OracleWrapper(model, BiasedReweightingPolicy(0.5), score=kind)
    scores = wrapper.score(X, Y, batch_size=8)
    p = np.asarray(model.predict(X, verbose=0), "float64")
    np.testing.assert_allclose(scores, hand_scores(kind, model, X, LABELS, p),
                               rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(wrapper.score(X, Y, batch_size=8), scores)


@pytest.mark.parametrize("kind", ["loss", "acc"])
def test_labels_of_shape_n_or_n_1_give_the_same_scores(kind):
    model = make_classifier(2, 3, loss="sparse_categorical_crossentropy")
    wrapper = OracleWrapper(model, BiasedReweightingPolicy(), score=kind)
    expected = hand_scores(kind, model, X, LABELS, probabilities(model, X))
    # One call per shape, in this order: a relaxed trace of the first shape
    # must not serve the second.
    for labels in (LABELS, LABELS[:, None], LABELS):
        np.testing.assert_allclose(wrapper.score(X, labels), expected, rtol=1e-5, atol=1e-6)


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3, activation="softmax")

    def call(self, x):
        return self.dense(x)


def test_subclassed_models_get_acc_scores_and_a_clear_gnorm_refusal():
    model = Subclassed()
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="`score='gnorm'` needs .* Received: model"):
        OracleWrapper(model, BiasedReweightingPolicy(), score="gnorm")
    scores = OracleWrapper(model, BiasedReweightingPolicy(), score="acc").score(X, LABELS)
    predicted = keras.ops.convert_to_numpy(model(X)).argmax(axis=1)
    np.testing.assert_array_equal(scores, (predicted != LABELS).astype("float32"))
