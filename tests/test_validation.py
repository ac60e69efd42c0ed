"""Bad arguments and data are refused with an error naming what was given and what is expected.

Arguments of the training classes, samplers, conditions and reweighting
policies are refused by their constructors; arguments and data of `fit`
before any training step, leaving the model unchanged. A stream is checked
batch by batch, and an epoch that it ends early ends with a warning naming
the step.
"""

import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import blobs, make_classifier, one_hot

from importance_sampling.datasets import InMemoryDataset
from importance_sampling.infobatch import InfoBatchSampler
from importance_sampling.reweighting import (
    UNBIASED,
    AdjustedBiasedReweightingPolicy,
    BiasedReweightingPolicy,
    CorrectingReweightingPolicy,
)
from importance_sampling.samplers import (
    AdaptiveAdditiveSmoothingSampler,
    AdditiveSmoothingSampler,
    ConstantTimeSampler,
    ConstantVarianceSampler,
    ExpCondition,
    HistorySampler,
    LSTMSampler,
    ModelSampler,
    OnlineBatchSelectionSampler,
    PerClassGaussian,
    PowerSmoothingSampler,
    SCSGSampler,
    TotalVariationCondition,
    UniformSampler,
    VarianceReductionCondition,
    WarmupCondition,
)
from importance_sampling.selective_backprop import SelectiveBackpropSampler
from importance_sampling.training import (
    SVRG,
    ApproximateImportanceTraining,
    ConstantTimeImportanceTraining,
    ConstantVarianceImportanceTraining,
    ImportanceTraining,
    InfoBatchTraining,
    OrderedSGDTraining,
    ReducibleLossTraining,
    SelectiveBackpropTraining,
    SelectiveTraining,
    UnbiasedImportanceTraining,
)

X, LABELS = blobs(64, num_classes=3)
Y = one_hot(LABELS, 3)
NAN, INF = float("nan"), float("inf")


def named(make, cls):
    """`make`, named after the class it makes (for the test ids)."""
    make.__name__ = cls.__name__
    return make


def training(cls):
    """A maker of `cls` for a new classifier, with the keyword arguments it is given."""
    if cls is ReducibleLossTraining:
        return named(lambda **kwargs: cls(make_classifier(2, 3), make_classifier(2, 3),
                                          **kwargs), cls)
    return named(lambda **kwargs: cls(make_classifier(2, 3), **kwargs), cls)


def sampler(cls, *args):
    """A maker of the sampler `cls` of a small dataset, unbiased weights and `args`."""
    return named(lambda **kwargs: cls(InMemoryDataset(X, LABELS, categorical=False),
                                      UNBIASED, *args, **kwargs), cls)


def smoothing(cls):
    return named(lambda **kwargs: cls(sampler(UniformSampler)(), **kwargs), cls)


def labelled(make, kwargs, received):
    ((name, value),) = kwargs.items()
    return pytest.param(make, kwargs, received, id=f"{make.__name__}-{name}-{value!r}")


# Each row: how to make the object, one bad keyword argument and the
# `Received: ...` fragment the message must contain.
ARGUMENTS = [
    (training(ImportanceTraining), {"k": "high"}, "Received: k='high'"),
    (training(ImportanceTraining), {"k": NAN}, "Received: k=nan"),
    (training(ImportanceTraining), {"smooth": INF}, "Received: smooth=inf"),
    (training(ImportanceTraining), {"smooth": True}, "Received: smooth=True"),
    (training(ImportanceTraining), {"adaptive_smoothing": "yes"},
     "a boolean, `True` or `False`. Received: adaptive_smoothing='yes'"),
    (training(ImportanceTraining), {"presample": 1.0},
     "a float larger than 1 (a multiple of the batch size). Received: presample=1.0"),
    (training(ImportanceTraining), {"presample": INF}, "Received: presample=inf"),
    (training(ImportanceTraining), {"tau_th": "never"}, "Received: tau_th='never'"),
    (training(ImportanceTraining), {"forward_batch_size": 2.0},
     "must be a positive integer. Received: forward_batch_size=2.0"),
    (training(ApproximateImportanceTraining), {"presample": -3}, "Received: presample=-3"),
    (training(UnbiasedImportanceTraining), {"tau_th": 0.5}, "Received: tau_th=0.5"),
    (training(ConstantVarianceImportanceTraining), {"backward_time": "slow"},
     "a positive number (the time of a backward pass in forward passes). "
     "Received: backward_time='slow'"),
    (training(ConstantVarianceImportanceTraining), {"extra_samples": None},
     "must be a non-negative number. Received: extra_samples=None"),
    (training(ConstantTimeImportanceTraining), {"backward_time": INF},
     "Received: backward_time=inf"),
    (training(SVRG), {"B": INF}, "must be a non-negative number. Received: B=inf"),
    (training(SVRG), {"B_rate": "x"}, "must be a positive number. Received: B_rate='x'"),
    (training(SVRG), {"B_over_b": 2.5}, "must be a positive integer. Received: B_over_b=2.5"),
    (training(SelectiveTraining), {"strategy": "top"},
     "must be one of ('percentile', 'mass'). Received: strategy='top'"),
    (training(SelectiveTraining), {"fraction": "half"},
     "must be a number in (0, 1]. Received: fraction='half'"),
    (training(SelectiveTraining), {"from_top": "yes"}, "Received: from_top='yes'"),
    (training(SelectiveTraining), {"evaluate_every_epoch": 1},
     "Received: evaluate_every_epoch=1"),
    (training(SelectiveTraining), {"seed": -1},
     "`None` or a non-negative integer. Received: seed=-1"),
    (training(InfoBatchTraining), {"seed": 1.5}, "Received: seed=1.5"),
    (training(InfoBatchTraining), {"delta": "all"},
     "must be a number in (0, 1]. Received: delta='all'"),
    (training(InfoBatchTraining), {"prune_ratio": INF},
     "must be a number in [0, 1). Received: prune_ratio=inf"),
    (training(SelectiveBackpropTraining), {"beta": INF}, "Received: beta=inf"),
    (training(SelectiveBackpropTraining), {"forward_batch_size": 0},
     "must be `None` or a positive integer. Received: forward_batch_size=0"),
    (training(OrderedSGDTraining), {"schedule": "yes"}, "Received: schedule='yes'"),
    (training(OrderedSGDTraining), {"accuracy": 1},
     "(a string). Received: accuracy=1"),
    (training(ReducibleLossTraining), {"presample": 0.5}, "Received: presample=0.5"),
    (sampler(UniformSampler), {"seed": 1.5},
     "`None`, a non-negative integer or a list of them. Received: seed=1.5"),
    (sampler(UniformSampler), {"seed": True}, "Received: seed=True"),
    (sampler(ModelSampler, None), {"large_batch": 0}, "Received: large_batch=0"),
    (sampler(ModelSampler, None), {"forward_batch_size": 0},
     "Received: forward_batch_size=0"),
    (sampler(HistorySampler, None), {"recompute": -1},
     "must be a non-negative integer. Received: recompute=-1"),
    (sampler(HistorySampler, None), {"forward_batch_size": None},
     "Received: forward_batch_size=None"),
    (sampler(OnlineBatchSelectionSampler, None), {"steps_per_epoch": 0},
     "Received: steps_per_epoch=0"),
    (sampler(OnlineBatchSelectionSampler, None, 4), {"s_e": (100.0,)},
     "a pair of numbers of at least 1, the selection pressures at the first and the "
     "last epoch. Received: s_e=(100.0,)"),
    (sampler(OnlineBatchSelectionSampler, None, 4), {"s_e": (0.5, 100.0)},
     "Received: s_e=(0.5, 100.0)"),
    (sampler(OnlineBatchSelectionSampler, None, 4), {"n_epochs": 0}, "Received: n_epochs=0"),
    (sampler(OnlineBatchSelectionSampler, None, 4), {"recompute": 1.5},
     "Received: recompute=1.5"),
    (sampler(LSTMSampler), {"presample": 0}, "Received: presample=0"),
    (sampler(LSTMSampler), {"history": 0}, "Received: history=0"),
    (sampler(LSTMSampler), {"log": "yes"}, "Received: log='yes'"),
    (sampler(LSTMSampler), {"warmup": -1}, "Received: warmup=-1"),
    (sampler(PerClassGaussian), {"alpha": "x"}, "must be a number in [0, 1). Received: alpha='x'"),
    (sampler(PerClassGaussian), {"presample": 1.5}, "Received: presample=1.5"),
    (sampler(SCSGSampler, None), {"B": -1}, "Received: B=-1"),
    (sampler(SCSGSampler, None), {"sample_weight": np.ones(3)},
     "`None` or one weight per training sample, of shape (64,). Received: sample_weight "
     "of shape (3,)"),
    (sampler(ConstantTimeSampler, None), {"tau_th": "x"}, "Received: tau_th='x'"),
    (sampler(ConstantTimeSampler, None), {"ratio": None},
     "must be a number in [0, 1]. Received: ratio=None"),
    (sampler(ConstantTimeSampler, None), {"min_a": "x"},
     "must be a number in (0, 1]. Received: min_a='x'"),
    (sampler(ConstantVarianceSampler, None), {"extra_samples": "x"},
     "Received: extra_samples='x'"),
    (sampler(SelectiveBackpropSampler, None), {"beta": -1.0}, "Received: beta=-1.0"),
    (sampler(InfoBatchSampler, 10), {"delta": 0.0}, "Received: delta=0.0"),
    (smoothing(AdditiveSmoothingSampler), {"c": "x"}, "Received: smooth='x'"),
    (smoothing(AdaptiveAdditiveSmoothingSampler), {"percentage": None},
     "Received: percentage=None"),
    (smoothing(AdaptiveAdditiveSmoothingSampler), {"forget": "x"}, "Received: forget='x'"),
    (smoothing(PowerSmoothingSampler), {"power": True}, "Received: power=True"),
    (WarmupCondition, {"warmup": True}, "must be a non-negative integer. Received: warmup=True"),
    (ExpCondition, {"lambda_th": -1.0},
     "must be a non-negative number. Received: lambda_th=-1.0"),
    (ExpCondition, {"momentum": "x"}, "must be a number in [0, 1). Received: momentum='x'"),
    (TotalVariationCondition, {"tv_th": 1.0},
     "must be a number in [0, 1). Received: tv_th=1.0"),
    (VarianceReductionCondition, {"vr_th": NAN}, "Received: vr_th=nan"),
    (BiasedReweightingPolicy, {"k": "x"},
     "`k` must be a number of at most 1 (1 is unbiased importance sampling, smaller values "
     "focus on hard examples). Received: k='x'"),
    (AdjustedBiasedReweightingPolicy, {"k": NAN}, "Received: k=nan"),
    (CorrectingReweightingPolicy, {"k": True}, "Received: k=True"),
]


@pytest.mark.parametrize("make, kwargs, received", [labelled(*row) for row in ARGUMENTS])
def test_a_bad_argument_is_refused_by_the_constructor(make, kwargs, received):
    (name,) = kwargs
    with pytest.raises(ValueError) as raised:
        make(**kwargs)
    message = str(raised.value)
    # The `c` of the additive smoothing is the `smooth` of the training classes.
    assert f"`{'smooth' if name == 'c' else name}` must be" in message
    assert received in message


def assert_refused_untouched(model, error, match, fit):
    """`fit()` raises `error` matching `match` and leaves `model` as it was."""
    before = model.get_weights()
    with pytest.raises(error, match=match):
        fit()
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert int(model.optimizer.iterations) == 0


def with_label(labels, position, value):
    y = labels.astype("float64")
    y[position] = value
    return y


SPARSE, CATEGORICAL = "sparse_categorical_crossentropy", "categorical_crossentropy"
ARRAYS = {"x": X, "y": LABELS}


def refusal(name, loss, fit_kwargs, message):
    return pytest.param(loss, fit_kwargs, message, id=name)


# Each row: the model's loss, the arguments of `fit` (besides `batch_size`
# and `verbose`) and the message expected, word for word (`{name}` is the
# model's name).
FIT_ARGUMENTS = [
    refusal("x-strings", SPARSE, {"x": X.astype(str), "y": LABELS},
            "`x` must hold numbers (an array of a numeric or boolean dtype). Received: "
            f"x of dtype {X.astype(str).dtype} and shape (64, 2)"),
    refusal("x-nested-strings", SPARSE, {"x": [X.astype(str)], "y": LABELS},
            "Received: x[0] of dtype <U"),
    refusal("y-objects", SPARSE, {"x": X, "y": LABELS.astype(object)},
            "`y` must hold numbers (an array of a numeric or boolean dtype). Received: "
            "y of dtype object and shape (64,)"),
    refusal("empty", SPARSE, {"x": X[:0], "y": LABELS[:0]},
            "The training data must hold at least one sample. Received: x and y with 0 "
            "samples"),
    refusal("x-none", SPARSE, {"x": None, "y": LABELS},
            "`x` is required: training arrays or a stream of batches. Received: x=None"),
    refusal("one-hot-sparse", SPARSE, {"x": X, "y": Y},
            "`y` does not fit the loss `sparse_categorical_crossentropy` of model "
            "'{name}', which takes integer class indices, of shape (N,) (one-hot targets "
            "need `categorical_crossentropy`). Received: y of shape (64, 3)"),
    refusal("label-out-of-range", SPARSE, {"x": X, "y": with_label(LABELS, 5, 3)},
            "`y` does not fit the loss `sparse_categorical_crossentropy` of model "
            "'{name}', which takes integer class indices in [0, 3) for its 3 outputs. "
            "Received: y holding 3.0"),
    refusal("label-fraction", SPARSE, {"x": X, "y": with_label(LABELS, 7, 0.5)},
            "Received: y holding 0.5"),
    refusal("labels-categorical", CATEGORICAL, ARRAYS,
            "`y` does not fit the loss `categorical_crossentropy` of model '{name}', which "
            "takes one-hot targets, of shape (N, 3) (class indices need "
            "`sparse_categorical_crossentropy` or `keras.utils.to_categorical(y, 3)`). "
            "Received: y of shape (64,)"),
    refusal("label-column-categorical", CATEGORICAL, {"x": X, "y": LABELS[:, None]},
            "Received: y of shape (64, 1)"),
    refusal("one-hot-4-categorical", CATEGORICAL, {"x": X, "y": one_hot(LABELS, 4)},
            "which takes one-hot targets, of shape (N, 3). Received: y of shape (64, 4)"),
    # Keras's own error, from the forward pass that builds the step.
    refusal("x-features", SPARSE, {"x": X[:, :1], "y": LABELS},
            "expected axis -1 of input shape to have value 2"),
    refusal("epochs", SPARSE, {**ARRAYS, "epochs": 1.5},
            "`epochs` must be a non-negative integer. Received: epochs=1.5"),
    refusal("initial-epoch", SPARSE, {**ARRAYS, "initial_epoch": -1},
            "Received: initial_epoch=-1"),
    refusal("verbose", SPARSE, {**ARRAYS, "verbose": 3},
            "`verbose` must be one of ('auto', 0, 1, 2). Received: verbose=3"),
    refusal("shuffle", SPARSE, {**ARRAYS, "shuffle": "yes"}, "Received: shuffle='yes'"),
    refusal("callbacks", SPARSE, {**ARRAYS, "callbacks": keras.callbacks.History()},
            "`callbacks` must be `None` or a list of `keras.callbacks.Callback`. "
            "Received: callbacks=<keras"),
    refusal("validation-steps", SPARSE, {**ARRAYS, "validation_steps": 0},
            "`validation_steps` must be `None` or a positive integer. Received: "
            "validation_steps=0"),
    refusal("validation-batch-size", SPARSE, {**ARRAYS, "validation_batch_size": 0.5},
            "Received: validation_batch_size=0.5"),
    refusal("validation-freq", SPARSE, {**ARRAYS, "validation_freq": [1, 0]},
            "Received: validation_freq=[1, 0]"),
    refusal("validation-split", SPARSE, {**ARRAYS, "validation_split": "0.2"},
            "`validation_split` must be a number in [0, 1). Received: "
            "validation_split='0.2'"),
]


@pytest.mark.parametrize("loss, fit_kwargs, message", FIT_ARGUMENTS)
def test_bad_data_and_fit_arguments_are_refused_before_any_step(loss, fit_kwargs, message):
    model = make_classifier(2, 3, loss=loss)
    match = re.escape(message.format(name=model.name))
    assert_refused_untouched(
        model, ValueError, match,
        lambda: ImportanceTraining(model, presample=32).fit(
            **{"batch_size": 16, "verbose": 0, **fit_kwargs}
        ),
    )


@pytest.mark.parametrize("make", [
    training(cls) for cls in (
        ImportanceTraining, UnbiasedImportanceTraining, ApproximateImportanceTraining,
        ConstantVarianceImportanceTraining, ConstantTimeImportanceTraining, SVRG,
        SelectiveTraining, InfoBatchTraining, SelectiveBackpropTraining,
        OrderedSGDTraining, ReducibleLossTraining,
    )
], ids=lambda make: make.__name__)
def test_every_training_class_checks_the_targets_before_any_step(make):
    training_ = make()  # of a classifier compiled with `categorical_crossentropy`
    assert_refused_untouched(
        training_.model, ValueError,
        re.escape("class indices need `sparse_categorical_crossentropy`"),
        lambda: training_.fit(X, LABELS, batch_size=16, verbose=0),
    )


def batches(count, bad=None, at=None):
    """A generator of `count` batches of 10 samples, `bad` instead of the batch `at`."""
    for index in range(count):
        yield bad if index == at else (X[:10], LABELS[:10])


class Batches(keras.utils.PyDataset):
    """`count` batches of 10 samples, `bad` instead of the batch `at`."""

    def __init__(self, count, bad=None, at=None):
        super().__init__()
        self.count, self.bad, self.at = count, bad, at

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        return self.bad if index == self.at else (X[index:index + 10], LABELS[index:index + 10])


STREAMS = [
    (lambda: batches(4, X[:10], at=1),
     "Batch 1 (counting from 0) of the training stream must be a tuple `(x, y)` or "
     "`(x, y, sample_weight)`. Received: ndarray of shape (10, 2)"),
    (lambda: batches(4, {"x": X[:10], "y": LABELS[:10]}, at=1),
     "Batch 1 (counting from 0) of the training stream must be a tuple `(x, y)` or "
     "`(x, y, sample_weight)`. Received: dict with the keys ['x', 'y']"),
    (lambda: batches(4, (X[:10], LABELS[:10], np.ones(10), np.ones(10)), at=0),
     "Batch 0 (counting from 0) of the training stream must be a tuple `(x, y)` or "
     "`(x, y, sample_weight)`. Received: tuple of 4 elements"),
    (lambda: Batches(4, X[:10], at=0), "Batch 0 (counting from 0) of the training stream"),
    (lambda: Batches(4, [X[:10]], at=3),
     "Batch 3 (counting from 0) of the training stream must be a tuple `(x, y)` or "
     "`(x, y, sample_weight)`. Received: list of 1 elements"),
    (lambda: Batches(0), "The training `PyDataset` must have at least one batch. "
                         "Received: a PyDataset of 0 batches"),
    (lambda: tf.data.Dataset.from_tensor_slices(X).batch(10),
     "The elements of the training `tf.data.Dataset` must be tuples `(x, y)` or "
     "`(x, y, sample_weight)`. Received: elements of the structure TensorSpec"),
]


@pytest.mark.parametrize("stream, message", STREAMS,
                         ids=["array", "dict", "four", "pydataset", "pydataset-last",
                              "pydataset-empty", "tf-data"])
def test_a_stream_of_the_wrong_structure_is_refused_naming_the_batch(stream, message):
    model = make_classifier(2, 3, loss=SPARSE)
    assert_refused_untouched(
        model, ValueError, re.escape(message),
        lambda: ImportanceTraining(model, presample=20).fit(stream(), batch_size=8,
                                                            verbose=0),
    )


def test_a_wrong_batch_after_some_steps_is_named():
    model = make_classifier(2, 3, loss=SPARSE)
    # tf.data reads a generator in a `tf.py_function`, which wraps its error.
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError),
                       match=re.escape("Batch 10 (counting from 0) of the training stream")):
        ImportanceTraining(model, presample=20).fit(batches(12, X[:10], at=10), batch_size=8,
                                                    verbose=0)
    assert int(model.optimizer.iterations) > 0


@pytest.mark.parametrize("stream, steps, message", [
    (lambda: batches(3), 5, "ran out of data at step 3 of epoch 1: the epoch ended after 2 "
                            "of its `steps_per_epoch=5` steps"),
    (lambda: Batches(4), 3, "ran out of data at step 3 of epoch 1: the epoch ended after 2 "
                            "of its `steps_per_epoch=3` steps"),
], ids=["generator", "pydataset"])
def test_a_stream_that_ends_early_ends_the_epoch_with_a_warning_naming_the_step(
        stream, steps, message):
    model = make_classifier(2, 3, loss=SPARSE)
    with pytest.warns(UserWarning, match=re.escape(message)) as caught:
        ImportanceTraining(model, presample=20).fit(stream(), batch_size=8, verbose=0,
                                                    steps_per_epoch=steps)
    # 30 or 40 samples: a step of 20 candidates, then one of the rest.
    assert len([w for w in caught if "ran out of data at step" in str(w.message)]) == 1


def test_a_stream_long_enough_for_its_steps_ends_no_epoch_early():
    model = make_classifier(2, 3, loss=SPARSE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ImportanceTraining(model, presample=20).fit(batches(8), batch_size=8, verbose=0,
                                                    steps_per_epoch=2, epochs=2)
    assert int(model.optimizer.iterations) == 4
    assert not [w for w in caught if "ran out of data at step" in str(w.message)]
