"""Models with several inputs or outputs, and losses over masked sequences."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import blobs, one_hot

from importance_sampling.model_wrappers import OracleWrapper
from importance_sampling.reweighting import BiasedReweightingPolicy, NoReweightingPolicy
from importance_sampling.training import ApproximateImportanceTraining, ImportanceTraining

X, LABELS = blobs(96, num_classes=3, input_dim=4)
Y_CLASS = one_hot(LABELS, 3)
Y_VALUE = np.tanh(X[:, :1])


def two_output_model(dict_outputs=False, loss_as_dict=False, loss_weights=(1.0, 0.5),
                     optimizer="adam"):
    """A softmax head `cls` and a regression head `reg` on one trunk."""
    inputs = keras.Input((4,), name="features")
    hidden = keras.layers.Dense(8, activation="tanh")(inputs)
    cls = keras.layers.Dense(3, activation="softmax", name="cls")(hidden)
    reg = keras.layers.Dense(1, name="reg")(hidden)
    outputs = {"cls": cls, "reg": reg} if dict_outputs else [cls, reg]
    model = keras.Model(inputs, outputs)
    if loss_as_dict:
        loss = {"cls": "categorical_crossentropy", "reg": "mse"}
        weights = dict(zip(("cls", "reg"), loss_weights))
    else:
        loss, weights = ["categorical_crossentropy", "mse"], list(loss_weights)
    model.compile(optimizer, loss, loss_weights=weights, metrics={"cls": ["accuracy"]})
    return model


def hand_losses(model, x, y_class, y_value):
    """The per-sample loss of each output, from `model.predict`."""
    predicted = model.predict(x, verbose=0)
    if isinstance(predicted, dict):
        p_class, p_value = predicted["cls"], predicted["reg"]
    else:
        p_class, p_value = predicted
    cross_entropy = -np.sum(y_class * np.log(p_class), axis=1)
    squared_error = np.mean((p_value - y_value) ** 2, axis=1)
    return cross_entropy, squared_error


@pytest.mark.parametrize(
    "dict_outputs, loss_as_dict, targets_as_dict",
    [(False, False, False), (False, True, True), (False, True, False), (True, True, True)],
    ids=["list-list-list", "list-dict-dict", "list-dict-list", "dict-dict-dict"],
)
def test_score_is_the_loss_weighted_sum_over_outputs(dict_outputs, loss_as_dict,
                                                     targets_as_dict):
    model = two_output_model(dict_outputs, loss_as_dict, loss_weights=(1.0, 0.5))
    y = {"cls": Y_CLASS, "reg": Y_VALUE} if targets_as_dict else [Y_CLASS, Y_VALUE]
    scores = OracleWrapper(model, NoReweightingPolicy()).score(X, y, batch_size=40)
    cross_entropy, squared_error = hand_losses(model, X, Y_CLASS, Y_VALUE)
    np.testing.assert_allclose(scores, cross_entropy + 0.5 * squared_error, rtol=1e-4)


def test_a_multi_output_step_minimises_the_weighted_sum_of_the_losses():
    model = two_output_model(optimizer=keras.optimizers.SGD(0.3), loss_weights=(1.0, 2.0))
    x, y_class, y_value = X[:16], Y_CLASS[:16], Y_VALUE[:16]
    w = np.linspace(0.5, 1.5, 16).astype("float32")
    before = [v.numpy() for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        p_class, p_value = model(x, training=True)
        per_sample = (keras.losses.categorical_crossentropy(y_class, p_class)
                      + 2.0 * tf.reduce_mean(tf.square(p_value - y_value), axis=1))
        expected = tf.reduce_mean(w * per_sample)
    grads = tape.gradient(expected, model.trainable_variables)

    loss, logs, _ = OracleWrapper(model, BiasedReweightingPolicy(1.0)).train_batch(
        x, [y_class, y_value], w[:, None]
    )

    assert loss == pytest.approx(float(expected), rel=1e-5)
    for old, grad, new in zip(before, grads, model.trainable_variables):
        np.testing.assert_allclose(new.numpy(), old - 0.3 * grad.numpy(), rtol=1e-4, atol=1e-6)
    cross_entropy = keras.losses.categorical_crossentropy(y_class, p_class).numpy()
    assert logs["cls_loss"] == pytest.approx(float(np.mean(w * cross_entropy)), rel=1e-4)


def test_multi_output_training_logs_the_keys_of_model_fit():
    y = {"cls": Y_CLASS, "reg": Y_VALUE}
    split = 64
    validation = (X[split:], {"cls": Y_CLASS[split:], "reg": Y_VALUE[split:]})
    train = (X[:split], {"cls": Y_CLASS[:split], "reg": Y_VALUE[:split]})
    reference = two_output_model().fit(*train, batch_size=16, epochs=1, verbose=0,
                                       validation_data=validation)

    model = two_output_model()
    before = model.evaluate(X, y, verbose=0, return_dict=True)["loss"]
    history = ImportanceTraining(model, presample=48).fit(
        *train, batch_size=16, epochs=6, verbose=0, validation_data=validation
    )

    assert sorted(history.history) == sorted([*reference.history, "unbiased_loss"])
    assert model.evaluate(X, y, verbose=0, return_dict=True)["loss"] < before


def test_dict_inputs_by_input_name():
    first, second = keras.Input((2,), name="first"), keras.Input((2,), name="second")
    merged = keras.layers.Concatenate()([first, second])
    outputs = keras.layers.Dense(3, activation="softmax")(
        keras.layers.Dense(8, activation="tanh")(merged)
    )
    model = keras.Model({"first": first, "second": second}, outputs)
    model.compile("adam", "categorical_crossentropy")
    x = {"second": X[:, 2:], "first": X[:, :2]}

    scores = OracleWrapper(model, NoReweightingPolicy()).score(x, Y_CLASS)
    predicted = model.predict(x, verbose=0)
    np.testing.assert_allclose(scores, -np.sum(Y_CLASS * np.log(predicted), axis=1),
                               rtol=1e-4)
    before = model.evaluate(x, Y_CLASS, verbose=0)
    ImportanceTraining(model, presample=64).fit(x, Y_CLASS, batch_size=16, epochs=5,
                                                verbose=0)
    assert model.evaluate(x, Y_CLASS, verbose=0) < before


def sequence_model():
    """Tokens (0 is padding) to a softmax over 5 classes at every step."""
    model = keras.Sequential([
        keras.Input((6,), dtype="int32"),
        keras.layers.Embedding(10, 4, mask_zero=True),
        keras.layers.LSTM(8, return_sequences=True),
        keras.layers.Dense(5, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy")
    return model


def padded_sequences(count=12, steps=6, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, steps + 1, size=count)
    tokens = rng.integers(1, 10, size=(count, steps))
    tokens[np.arange(steps)[None, :] >= lengths[:, None]] = 0
    targets = rng.integers(0, 5, size=(count, steps))
    return tokens.astype("int32"), targets, lengths


def test_sequence_losses_average_the_unmasked_steps_of_each_sample():
    model = sequence_model()
    tokens, targets, lengths = padded_sequences()
    scores = OracleWrapper(model, NoReweightingPolicy()).score(tokens, targets)

    predicted = model.predict(tokens, verbose=0)
    step_losses = -np.log(np.take_along_axis(predicted, targets[..., None], -1)[..., 0])
    expected = [step_losses[i, :length].mean() for i, length in enumerate(lengths)]
    np.testing.assert_allclose(scores, expected, rtol=1e-4)


def test_targets_at_padded_steps_do_not_change_the_scores():
    model = sequence_model()
    tokens, targets, _ = padded_sequences()
    other = np.where(tokens == 0, (targets + 1) % 5, targets)
    wrapper = OracleWrapper(model, NoReweightingPolicy())
    np.testing.assert_allclose(wrapper.score(tokens, targets), wrapper.score(tokens, other),
                               rtol=1e-6)
    assert not np.array_equal(targets, other)


def test_the_loss_predictor_needs_a_model_with_one_output():
    model = two_output_model()
    before = model.get_weights()
    with pytest.raises(ValueError, match="one output.*2 outputs"):
        ApproximateImportanceTraining(model, presample=48).fit(
            X, [Y_CLASS, Y_VALUE], batch_size=16, verbose=0
        )
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
