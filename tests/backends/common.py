"""Data, models and streams of the backend-neutral tests; no TensorFlow."""

import contextlib

import keras
import numpy as np

from importance_sampling import signals

BACKEND = keras.backend.backend()

# The kinds of stream that `fit` reads on the running backend.
STREAMS = ("py_dataset", "generator") + (("data_loader",) if BACKEND == "torch" else ())


def bn_dropout_classifier(input_dim=2, num_classes=3, learning_rate=0.01):
    """A compiled classifier with BatchNormalization and Dropout."""
    model = keras.Sequential([
        keras.Input((input_dim,)),
        keras.layers.Dense(16, activation="tanh"),
        keras.layers.BatchNormalization(),
        keras.layers.Dropout(0.25),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])
    model.compile(keras.optimizers.Adam(learning_rate), "categorical_crossentropy",
                  metrics=["accuracy"])
    return model


class ArrayBatches(keras.utils.PyDataset):
    """The rows of arrays in order, `batch_size` at a time, as `(x, y[, w])` tuples."""

    def __init__(self, *arrays, batch_size=16):
        super().__init__()
        self.arrays = arrays
        self.batch_size = batch_size

    def __len__(self):
        return -(-len(keras.tree.flatten(self.arrays[0])[0]) // self.batch_size)

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return tuple(keras.tree.map_structure(lambda a: a[rows], array)
                     for array in self.arrays)


def batches(*arrays, batch_size=16, repeat=False):
    """A Python generator of the batches of `ArrayBatches`, forever with `repeat`."""
    source = ArrayBatches(*arrays, batch_size=batch_size)
    while True:
        for index in range(len(source)):
            yield source[index]
        if not repeat:
            return


def data_loader(*arrays, batch_size=16):
    """A `torch.utils.data.DataLoader` of the rows of arrays, in order."""
    import torch

    tensors = [torch.as_tensor(array) for array in arrays]
    return torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(*tensors), batch_size=batch_size, shuffle=False
    )


def stream(kind, *arrays, batch_size=16):
    """A stream of kind `kind` (one of `STREAMS`) of the rows of `arrays`, one pass."""
    if kind == "py_dataset":
        return ArrayBatches(*arrays, batch_size=batch_size)
    if kind == "generator":
        return batches(*arrays, batch_size=batch_size)
    if kind == "data_loader":
        return data_loader(*arrays, batch_size=batch_size)
    raise ValueError(kind)


@contextlib.contextmanager
def host_steps():
    """Listen to `is.score` for the duration, which draws the batches on the host.

    Yields:
        The list of the `is.score` payloads received.
    """
    received = []

    def receiver(payload):
        received.append(payload)

    signals.score.connect(receiver)
    try:
        yield received
    finally:
        signals.score.disconnect(receiver)


def weights_changed(before, model):
    """Whether any weight of `model` differs from `before`."""
    return any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
