"""Shared fixtures: seeded runs, tiny datasets and tiny compiled models."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same random state."""
    keras.utils.set_random_seed(1234)


def make_classifier(input_dim=2, num_classes=2, loss="categorical_crossentropy",
                    metrics=("accuracy",), learning_rate=0.01, hidden=16):
    """A small compiled softmax (or, with 1 class, sigmoid) classifier."""
    activation = "sigmoid" if num_classes == 1 else "softmax"
    model = keras.Sequential([
        keras.Input((input_dim,)),
        keras.layers.Dense(hidden, activation="tanh"),
        keras.layers.Dense(num_classes, activation=activation),
    ])
    model.compile(keras.optimizers.Adam(learning_rate), loss, metrics=list(metrics))
    return model


def blobs(n=256, num_classes=3, input_dim=2, seed=0):
    """Gaussian blobs: float32 inputs and integer labels."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=n)
    centers = rng.normal(size=(num_classes, input_dim)) * 3
    x = centers[labels] + rng.normal(size=(n, input_dim))
    return x.astype("float32"), labels.astype("int64")


def one_hot(labels, num_classes):
    return np.eye(num_classes, dtype="float32")[labels]


def sgd_classifier(learning_rate=0.5):
    """A classifier of 2-d blobs into 3 classes, trained by plain SGD."""
    model = make_classifier(2, 3, loss="sparse_categorical_crossentropy")
    model.compile(keras.optimizers.SGD(learning_rate), "sparse_categorical_crossentropy",
                  metrics=["accuracy"], weighted_metrics=["accuracy"])
    return model


def expected_sgd_step(model, x, y, step_weights, learning_rate):
    """The weights after one SGD step on `mean(step_weights * loss)`."""
    with tf.GradientTape() as tape:
        per_sample = keras.losses.sparse_categorical_crossentropy(y, model(x, training=True))
        loss = tf.reduce_mean(step_weights * per_sample)
    grads = tape.gradient(loss, model.trainable_variables)
    after = [v.numpy() - learning_rate * g.numpy()
             for v, g in zip(model.trainable_variables, grads)]
    return float(loss), after
