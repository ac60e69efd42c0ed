"""The forms of `fit`'s arguments, on every backend."""

import keras
import numpy as np
import pytest
from conftest import blobs, make_classifier, one_hot

from importance_sampling.training import ImportanceTraining

from .common import STREAMS, ArrayBatches, batches, stream, weights_changed

X, LABELS = blobs(256, num_classes=3)
Y = one_hot(LABELS, 3)
X_VAL, LABELS_VAL = blobs(48, num_classes=3, seed=1)
Y_VAL = one_hot(LABELS_VAL, 3)


def two_input_classifier(named=False):
    """A classifier of the two features of `X` given as two inputs."""
    left = keras.Input((1,), name="left" if named else None)
    right = keras.Input((1,), name="right" if named else None)
    hidden = keras.layers.Dense(8, activation="tanh")(keras.layers.Concatenate()([left, right]))
    outputs = keras.layers.Dense(3, activation="softmax")(hidden)
    model = keras.Model({"left": left, "right": right} if named else [left, right], outputs)
    model.compile(keras.optimizers.Adam(0.01), "categorical_crossentropy", metrics=["accuracy"])
    return model


def split(x):
    return [x[:, :1], x[:, 1:]]


def named(x):
    return {"left": x[:, :1], "right": x[:, 1:]}


def val_loss_is(arrays):
    """A check that the last `val_loss` is the model's loss on `arrays`."""
    def check(model, history):
        assert history.history["val_loss"][-1] == pytest.approx(
            model.evaluate(*arrays, verbose=0)[0], rel=1e-5
        )
    return check


def keras_steps(data):
    """The optimizer steps of one epoch of `keras.Model.fit` on the stream `data`."""
    model = make_classifier(2, 3)
    model.fit(data, epochs=1, verbose=0)
    return int(model.optimizer.iterations)


def epochs_are(epochs):
    def check(model, history):
        assert history.epoch == epochs
    return check


# (model, fit arguments, optimizer steps of the whole fit, history keys, check)
FORMS = {
    "arrays": lambda: (
        make_classifier(2, 3), dict(x=X, y=Y, epochs=2), 32, {"loss", "unbiased_loss", "accuracy"}, None,
    ),
    "list-inputs": lambda: (
        two_input_classifier(), dict(x=split(X), y=Y, validation_data=(split(X_VAL), Y_VAL)),
        16, {"loss", "unbiased_loss", "accuracy", "val_loss", "val_accuracy"},
        val_loss_is((split(X_VAL), Y_VAL)),
    ),
    "dict-inputs": lambda: (
        two_input_classifier(named=True),
        dict(x=named(X), y=Y, validation_data=(named(X_VAL), Y_VAL)),
        16, {"loss", "unbiased_loss", "accuracy", "val_loss", "val_accuracy"},
        val_loss_is((named(X_VAL), Y_VAL)),
    ),
    "validation-arrays": lambda: (
        make_classifier(2, 3), dict(x=X, y=Y, validation_data=(X_VAL, Y_VAL)),
        16, {"loss", "unbiased_loss", "accuracy", "val_loss", "val_accuracy"}, val_loss_is((X_VAL, Y_VAL)),
    ),
    "validation-py-dataset": lambda: (
        make_classifier(2, 3),
        dict(x=X, y=Y, validation_data=ArrayBatches(X_VAL, Y_VAL, batch_size=16)),
        16, {"loss", "unbiased_loss", "accuracy", "val_loss", "val_accuracy"}, val_loss_is((X_VAL, Y_VAL)),
    ),
    "validation-split": lambda: (
        make_classifier(2, 3), dict(x=X, y=Y, validation_split=0.25),
        192 // 16, {"loss", "unbiased_loss", "accuracy", "val_loss", "val_accuracy"},
        val_loss_is((X[192:], Y[192:])),
    ),
    "initial-epoch": lambda: (
        make_classifier(2, 3), dict(x=X, y=Y, epochs=3, initial_epoch=1),
        32, {"loss", "unbiased_loss", "accuracy"}, epochs_are([1, 2]),
    ),
    "steps-per-epoch": lambda: (
        make_classifier(2, 3), dict(x=X, y=Y, epochs=2, steps_per_epoch=5),
        10, {"loss", "unbiased_loss", "accuracy"}, None,
    ),
    # A stream is read once an epoch, 64 candidates a step: the steps that
    # Keras takes on the stream in batches of 64 (256 / 64, but one more for a
    # generator on TensorFlow).
    **{
        f"{kind}-as-x": (lambda kind=kind: (
            make_classifier(2, 3), dict(x=stream(kind, X, Y, batch_size=16), y=None),
            keras_steps(stream(kind, X, Y, batch_size=64)), {"loss", "unbiased_loss", "accuracy"}, None,
        ))
        for kind in STREAMS
    },
    "generator-steps-per-epoch": lambda: (
        make_classifier(2, 3),
        dict(x=batches(X, Y, batch_size=10, repeat=True), epochs=2, steps_per_epoch=3,
             validation_data=batches(X_VAL, Y_VAL, batch_size=16, repeat=True),
             validation_steps=3),
        6, {"loss", "unbiased_loss", "accuracy", "val_loss", "val_accuracy"}, None,
    ),
    # A float presample: the batch size of the PyDataset's batches, 16, times
    # 4 candidates a step.
    "py-dataset-batch-size-none-presample-float": lambda: (
        make_classifier(2, 3),
        dict(x=ArrayBatches(X, Y, batch_size=16), batch_size=None, presample=4.0),
        4, {"loss", "unbiased_loss", "accuracy"}, None,
    ),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_fit_takes_every_form_of_data_and_trains_the_expected_steps(form):
    model, kwargs, steps, keys, check = FORMS[form]()
    presample = kwargs.pop("presample", 64)
    kwargs.setdefault("batch_size", 16)
    before = model.get_weights()
    history = ImportanceTraining(model, presample=presample).fit(verbose=0, **kwargs)
    assert int(model.optimizer.iterations) == steps
    assert weights_changed(before, model)
    assert set(history.history) == keys
    assert all(np.all(np.isfinite(values)) for values in history.history.values())
    if check is not None:
        check(model, history)


ZERO_CLASSES = {0: 0.0, 1: 0.0, 2: 0.0}


@pytest.mark.parametrize("form", ["class_weight", "sample_weight", "streamed-sample-weight"])
def test_user_weights_of_zero_leave_the_model_unchanged(form):
    model = make_classifier(2, 3)
    kwargs = {"x": X, "y": Y}
    if form == "class_weight":
        kwargs["class_weight"] = ZERO_CLASSES
    elif form == "sample_weight":
        kwargs["sample_weight"] = np.zeros(len(X), "float32")
    elif form == "streamed-sample-weight":
        kwargs = {"x": ArrayBatches(X, Y, np.zeros(len(X), "float32"), batch_size=16)}
    before = model.get_weights()
    history = ImportanceTraining(model, presample=64).fit(batch_size=16, verbose=0, **kwargs)
    assert int(model.optimizer.iterations) == (16 if "x" in kwargs and "y" in kwargs else 4)
    # (without the weights, the model would train: see the test above)
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert history.history["loss"][0] == 0
