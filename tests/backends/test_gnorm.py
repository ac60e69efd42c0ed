"""The `gnorm` score on every backend: closed forms, automatic differentiation, layers."""

import keras
import numpy as np
import pytest
from conftest import one_hot

from importance_sampling.model_wrappers import OracleWrapper
from importance_sampling.reweighting import NoReweightingPolicy


def gnorm(model, x, y, **kwargs):
    return OracleWrapper(model, NoReweightingPolicy(), score="gnorm", **kwargs).score(x, y)


def softmax(z):
    exp = np.exp(z - z.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def output_model(logits_dim, activation, loss, bias):
    """A model whose pre-activation output is `bias`, whatever the input."""
    model = keras.Sequential([
        keras.Input((2,)),
        keras.layers.Dense(logits_dim, activation=activation, kernel_initializer="zeros"),
    ])
    model.compile("sgd", loss)
    model.layers[-1].bias.assign(np.asarray(bias, "float32"))
    return model


SATURATED = [20.0, -20.0, 0.0]  # confidently wrong for class 1


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "sparse_categorical_crossentropy"])
def test_gnorm_is_softmax_minus_target_even_for_saturated_samples(loss):
    model = output_model(3, "softmax", loss, SATURATED)
    labels = np.array([1, 0, 2])
    y = labels if loss.startswith("sparse") else one_hot(labels, 3)
    p = softmax(np.array([SATURATED] * 3))
    expected = np.linalg.norm(p - one_hot(labels, 3), axis=1)
    scores = gnorm(model, np.zeros((3, 2), "float32"), y)
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-6)
    assert scores[0] == pytest.approx(np.sqrt(2), rel=1e-5)


def test_gnorm_from_logits_equals_gnorm_from_probabilities():
    logits = [1.5, -0.5, 0.25]
    x, labels = np.zeros((3, 2), "float32"), np.array([0, 1, 2])
    from_probabilities = gnorm(
        output_model(3, "softmax", "categorical_crossentropy", logits), x, one_hot(labels, 3)
    )
    from_logits = gnorm(
        output_model(3, None, keras.losses.CategoricalCrossentropy(from_logits=True), logits),
        x, one_hot(labels, 3),
    )
    np.testing.assert_allclose(from_logits, from_probabilities, rtol=1e-5)
    expected = np.linalg.norm(softmax(np.array([logits] * 3)) - one_hot(labels, 3), axis=1)
    np.testing.assert_allclose(from_logits, expected, rtol=1e-5)


def test_gnorm_of_a_sigmoid_output_with_binary_crossentropy():
    z = [8.0, -3.0]
    model = output_model(2, "sigmoid", "binary_crossentropy", z)
    y = np.array([[0, 1], [1, 1]], "float32")
    expected = np.linalg.norm(sigmoid(np.array([z, z])) - y, axis=1) / 2
    np.testing.assert_allclose(gnorm(model, np.zeros((2, 2), "float32"), y), expected, rtol=1e-5)


def test_gnorm_of_a_linear_output_with_mean_squared_error():
    z = [0.5, -1.0, 2.0]
    model = output_model(3, None, "mse", z)
    y = np.array([[0, 0, 0], [1, 2, 3]], "float32")
    expected = np.linalg.norm(2 * (np.array([z, z]) - y) / 3, axis=1)
    np.testing.assert_allclose(gnorm(model, np.zeros((2, 2), "float32"), y), expected, rtol=1e-5)


def test_other_pairs_are_differentiated_at_the_pre_activation_output():
    # Softmax with mean squared error has no closed form here.
    z = np.array([0.3, -0.2, 0.1])
    model = output_model(3, "softmax", "mse", z)
    y = one_hot(np.array([0]), 3)
    p = softmax(z[None])[0]
    # d/dz of mean((p - y)^2) = J^T 2 (p - y) / 3, J = diag(p) - p p^T
    jacobian = np.diag(p) - np.outer(p, p)
    expected = np.linalg.norm(jacobian.T @ (2 * (p - y[0]) / 3))
    scores = gnorm(model, np.zeros((1, 2), "float32"), y)
    np.testing.assert_allclose(scores, [expected], rtol=1e-4)


def trunk_and_head(separate):
    inputs = keras.Input((4,))
    h = keras.layers.Dense(5, activation="tanh", name="hidden")(inputs)
    h = keras.layers.Dropout(0.5)(h)
    if separate:
        z = keras.layers.Dense(3, name="logits")(h)
        outputs = keras.layers.Activation("softmax")(z)
    else:
        outputs = keras.layers.Dense(3, activation="softmax", name="logits")(h)
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "categorical_crossentropy")
    return model


def test_a_separate_activation_layer_gives_the_fused_layers_scores():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = one_hot(rng.integers(0, 3, 16), 3)
    fused, separate = trunk_and_head(False), trunk_and_head(True)
    separate.set_weights(fused.get_weights())
    np.testing.assert_allclose(gnorm(separate, x, y), gnorm(fused, x, y), rtol=1e-5)
    # The Dense layer before the activation layer is also accepted by name.
    np.testing.assert_allclose(gnorm(separate, x, y, layer="logits"), gnorm(fused, x, y),
                               rtol=1e-5)


def test_gnorm_bounds_the_last_layers_gradient_norm_exactly():
    # For a last Dense layer, d loss / d kernel = h g^T and d loss / d bias = g,
    # so their norm is ||g|| sqrt(||h||^2 + 1), g the gradient at z.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 4)).astype("float32")
    y = one_hot(rng.integers(0, 3, 12), 3)
    model = trunk_and_head(False)
    g = gnorm(model, x, y)
    model.get_layer("hidden").trainable = False
    full = OracleWrapper(model, NoReweightingPolicy(), score="full_gnorm").score(x, y)
    h = keras.ops.convert_to_numpy(model.get_layer("hidden")(x))
    np.testing.assert_allclose(full, g * np.sqrt((h**2).sum(axis=1) + 1), rtol=1e-4)


def test_an_inner_layer_is_differentiated_through_the_layers_above():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(6, 4)).astype("float32")
    y = one_hot(rng.integers(0, 3, 6), 3)
    model = trunk_and_head(False)
    kernel, bias = (np.asarray(w, "float64") for w in model.get_layer("logits").get_weights())
    hidden_kernel, hidden_bias = model.get_layer("hidden").get_weights()
    a = np.asarray(x, "float64") @ hidden_kernel + hidden_bias
    p = softmax(np.tanh(a) @ kernel + bias)
    # d loss / d a = (1 - tanh(a)^2) * (W (p - y))
    expected = np.linalg.norm((1 - np.tanh(a) ** 2) * ((p - y) @ kernel.T), axis=1)
    np.testing.assert_allclose(gnorm(model, x, y, layer="hidden"), expected, rtol=1e-4)


def test_a_layer_without_activation_is_refused_with_what_to_change():
    model = trunk_and_head(False)
    dropout = model.layers[2]
    with pytest.raises(ValueError, match="`Activation` layer; pass it as `layer=`. "
                                         "Received: layer 'dropout"):
        OracleWrapper(model, NoReweightingPolicy(), score="gnorm", layer=dropout)
    with pytest.raises(ValueError, match="Received: layer='logits' with score='loss'"):
        OracleWrapper(model, NoReweightingPolicy(), score="loss", layer="logits")
