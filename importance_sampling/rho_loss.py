"""RHO-LOSS (Mindermann et al., ICML 2022): train on the points of largest reducible loss.

```python
from importance_sampling.rho_loss import ReducibleLossTraining, train_irreducible_model

model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
irreducible, (x_rest, y_rest) = train_irreducible_model(model, x_train, y_train, epochs=5)
ReducibleLossTraining(model, irreducible).fit(x_rest, y_rest, batch_size=64, epochs=10)
```

A point's reducible holdout loss is its training loss under the model being
trained minus its irreducible loss, the loss under a model trained on
held-out data. Each step scores `presample` uniformly drawn candidates
(ten times the batch by default) with the model, in inference mode, and
trains on the `batch_size` of them whose reducible loss is largest, without
weights. The irreducible losses are computed once per training index at the
start of `fit` and travel with the candidates, with their training indices,
as further columns of their sample weights, so that the selection runs
inside the train step (`selection`); it needs random access to the data.
"""

import keras
import numpy as np
from keras import ops

from importance_sampling import signals
from importance_sampling.fitting import check_positive_int
from importance_sampling.reweighting import NoReweightingPolicy
from importance_sampling.samplers.base import BaseSampler, Candidates, SampledBatch
from importance_sampling.selection import SelectionTraining, selected, unpack_candidates
from importance_sampling.utils import checks, nested
from importance_sampling.utils.losses import ModelLoss


def _check_holdout(holdout):
    return checks.check_number("holdout", holdout, low=0, high=1, low_open=True,
                               high_open=True, expected="a fraction in (0, 1)")


def holdout_split(x, y, holdout=0.5, seed=None):
    """Split arrays at random into training data and held-out data.

    Args:
        x: Inputs: an array, or a list or dict of arrays.
        y: Targets, likewise.
        holdout: The fraction of the samples held out, in `(0, 1)`.
            Defaults to `0.5`.
        seed: The seed of the split. Defaults to `None` (NumPy's global
            generator draws one).

    Returns:
        `((x_train, y_train), (x_holdout, y_holdout))`.
    """
    holdout = _check_holdout(holdout)
    checks.check_seed(seed)
    x, y = nested.to_numpy(x), nested.to_numpy(y)
    nested.check_lengths(x, y, "training")
    count = nested.num_samples(x)
    held = int(round(count * holdout))
    if not 0 < held < count:
        raise ValueError(
            f"`holdout={holdout}` of {count} samples leaves one of the two "
            "parts empty."
        )
    if seed is None:
        seed = np.random.randint(2**31 - 1)
    order = np.random.default_rng(seed).permutation(count)
    rest, kept = np.sort(order[held:]), np.sort(order[:held])
    return nested.take((x, y), rest), nested.take((x, y), kept)


def fresh_copy(model):
    """An untrained copy of `model`'s architecture, compiled as `model` is.

    The copy is made by `keras.models.clone_model` (new weights) and
    compiled from `model.get_compile_config()`, with an optimizer of its
    own.
    """
    copy = keras.models.clone_model(model)
    try:
        copy.compile_from_config(model.get_compile_config())
    except Exception:  # noqa: BLE001 - a loss or metric Keras cannot rebuild
        optimizer = type(model.optimizer).from_config(model.optimizer.get_config())
        copy.compile(optimizer=optimizer, loss=model.loss)
    return copy


def train_irreducible_model(model, x, y, holdout=0.5, seed=None, **fit_kwargs):
    """Train an irreducible-loss model on a held-out part of `(x, y)`.

    The irreducible-loss model of RHO-LOSS is a fresh copy of `model`'s
    architecture (see `fresh_copy`) trained on data that the model itself
    will not be trained on.

    Args:
        model: The compiled `keras.Model` to be trained by
            `ReducibleLossTraining`; it is not changed.
        x: Training inputs (arrays).
        y: Training targets.
        holdout: The fraction of `(x, y)` held out to train the copy on.
            Defaults to `0.5`.
        seed: The seed of the split (see `holdout_split`).
        **fit_kwargs: Passed to the copy's `fit` (`epochs`, `batch_size`,
            `callbacks`, `verbose`, ...).

    Returns:
        `(irreducible_model, (x_train, y_train))`: the trained copy and the
        rest of the data, to train the model on.
    """
    (x_train, y_train), (x_held, y_held) = holdout_split(x, y, holdout, seed)
    irreducible = fresh_copy(model)
    irreducible.fit(x_held, y_held, **fit_kwargs)
    return irreducible, (x_train, y_train)


def irreducible_losses(model, irreducible_model, x, y, batch_size=128):
    """The per-sample loss of `model`'s compiled loss on the predictions of `irreducible_model`.

    Args:
        model: The compiled model whose loss is used (built).
        irreducible_model: A model with the same outputs.
        x: Inputs (arrays).
        y: Targets.
        batch_size: Batch size of the predictions. Defaults to `128`.

    Returns:
        A float32 NumPy array of shape `(num_samples,)`.
    """
    loss = ModelLoss(model)
    count = nested.num_samples(x)
    parts = []
    for start in range(0, count, batch_size):
        rows = slice(start, min(start + batch_size, count))
        x_i, y_i = nested.take((x, y), rows)
        y_pred = irreducible_model(x_i, training=False)
        parts.append(np.asarray(ops.convert_to_numpy(loss(y_i, y_pred)), "float32"))
    return np.concatenate(parts) if parts else np.zeros(0, "float32")


def repeats(indices):
    """Whether each entry of `indices` equals an entry before it (a tensor of booleans); traceable."""
    order = ops.argsort(indices)
    in_order = ops.take(indices, order)
    repeated = ops.concatenate(
        [ops.zeros([1], "bool"), ops.equal(in_order[1:], in_order[:-1])], axis=0
    )
    return ops.take(repeated, ops.argsort(order))


class ReducibleLossDraw:
    """Keep the `batch_size` candidates of largest reducible loss; traceable.

    The candidates' sample weights have three columns: the user's weight,
    the irreducible loss and the training index. Their training losses are
    scored in inference mode. A sample drawn more than once among the
    candidates (they are drawn with replacement) is kept once at most,
    unless there are fewer distinct candidates than the batch size.

    Args:
        scorer: An `OracleWrapper` of the model, with `score="loss"`.
        batch_size: The number of items of a step, over all replicas.
        presample: The number of candidates of a step, over all replicas.
        forward_batch_size: Batch size of the scoring forward passes, or
            `None` for the batch size.
        rows: A function turning the batch that Keras hands the step into
            the candidates, or `None` for the batch itself.
    """

    def __init__(self, scorer, batch_size, presample, forward_batch_size=None, rows=None):
        self.scorer = scorer
        self.batch_size = batch_size
        self.presample = presample
        self.forward_batch_size = forward_batch_size
        self.rows = rows

    def __call__(self, data, replica_id=0, num_replicas=1):
        x, y, columns = unpack_candidates(data, self.rows)
        columns = ops.cast(columns, "float32")
        size = self.batch_size // num_replicas
        losses = self.scorer.score_batch(
            x, y, self.forward_batch_size or size, self.presample // num_replicas
        )
        reducible = losses - columns[:, 1]
        lowest = ops.min(reducible) - 1.0
        reducible = ops.where(repeats(columns[:, 2]), lowest, reducible)
        _, positions = ops.top_k(reducible, size, sorted=False)
        return selected(x, y, columns[:, 0], positions)


class ReducibleLossSampler(BaseSampler):
    """The selection of `ReducibleLossDraw`, on the host.

    Every batch scores `presample` uniformly drawn candidates and keeps the
    `batch_size` distinct ones of largest reducible loss, with weight 1.
    `is.score` receives the reducible losses of the candidates.

    Args:
        dataset: A `BaseDataset` with random access.
        model: An `OracleWrapper` of the model (its `score()` gives the losses).
        irreducible: The irreducible loss of every training sample.
        presample: The number of candidates of a batch.
        forward_batch_size: Batch size of the scoring forward passes, or
            `None` for the batch size.
        indices: The training indices to draw the candidates from, or
            `None` (the default) for all.
        seed: Seed of the sampler's random generator.
    """

    def __init__(self, dataset, model, irreducible, presample, forward_batch_size=None,
                 indices=None, seed=None):
        super().__init__(dataset, NoReweightingPolicy(), seed)
        self.model = model
        self.irreducible = np.asarray(irreducible, "float64")
        self.presample = presample
        self.forward_batch_size = forward_batch_size
        self.indices = None if indices is None else np.asarray(indices, "int64")

    def candidates(self, batch_size):
        if self.indices is None:
            idxs, x, y = self.dataset.train_data.draw(self.presample, self.rng)
        else:
            idxs = self.rng.choice(self.indices, size=self.presample)
            x, y = self.dataset.train_data[idxs]
        losses = self.model.score(x, y, batch_size=self.forward_batch_size or batch_size)
        return Candidates(idxs, x, y, losses - self.irreducible[np.asarray(idxs)])

    def sample(self, batch_size):
        found = self.candidates(batch_size)
        signals.score.send({"idxs": found.idxs, "scores": found.scores})
        # A sample drawn twice is kept once, unless too few are distinct.
        _, first = np.unique(np.asarray(found.idxs), return_index=True)
        repeated = np.ones(len(found.idxs), bool)
        repeated[first] = False
        positions = np.lexsort((-found.scores, repeated))[:batch_size]
        idxs = np.asarray(found.idxs)[positions]
        x, y = nested.take((found.x, found.y), positions)
        weights = self.reweighting.sample_weights(positions, found.scores)
        scores = found.scores[positions]
        signals.sample.send({"idxs": idxs, "xy": (x, y), "w": weights,
                             "predicted_scores": scores})
        return SampledBatch(idxs, x, y, weights, np.ones(batch_size, "float32"), scores,
                            True)


def reducible_loss_sampler(dataset, wrapper, holdout=0.5, epochs=1, batch_size=128,
                           presample=1280, forward_batch_size=None, seed=None):
    """A `ReducibleLossSampler` with its irreducible-loss model trained on a holdout split.

    For the loops that draw batches on the host (the experiment command):
    a fraction `holdout` of the dataset's training samples trains a fresh
    copy of the wrapped model (see `fresh_copy`) for `epochs` epochs; the
    sampler then draws its candidates from the other samples only.

    Args:
        dataset: A `BaseDataset` with random access.
        wrapper: The `OracleWrapper` of the (compiled) model to train.
        holdout: The fraction of the training samples held out. Defaults
            to `0.5`.
        epochs: Epochs of training of the copy. Defaults to `1`.
        batch_size: Batch size of the copy's training. Defaults to `128`.
        presample: Candidates of a batch. Defaults to `1280`.
        forward_batch_size: Batch size of the scoring forward passes.
        seed: Seed of the split and of the sampler.

    Returns:
        A `ReducibleLossSampler`.
    """
    holdout = _check_holdout(holdout)
    checks.check_seed(seed)
    count = len(dataset.train_data)
    if seed is None:
        seed = np.random.randint(2**31 - 1)
    order = np.random.default_rng(seed).permutation(count)
    held = int(round(count * holdout))
    if not 0 < held < count:
        raise ValueError(
            f"`holdout={holdout}` of {count} samples leaves one of the two parts empty."
        )
    x_held, y_held = dataset.train_data[np.sort(order[:held])]
    irreducible_model = fresh_copy(wrapper.model)
    irreducible_model.fit(x_held, y_held, epochs=epochs, batch_size=batch_size, verbose=0)
    x_all, y_all = dataset.train_data[:]
    wrapper.build(x_all, y_all)
    losses = irreducible_losses(wrapper.model, irreducible_model, x_all, y_all,
                                forward_batch_size or batch_size)
    return ReducibleLossSampler(dataset, wrapper, losses, presample, forward_batch_size,
                                indices=np.sort(order[held:]), seed=seed)


class ReducibleLossTraining(SelectionTraining):
    """RHO-LOSS: train on the candidates whose reducible holdout loss is largest.

    Mindermann et al., "Prioritized Training on Points that are Learnable,
    Worth Learning, and Not Yet Learnt", ICML 2022. A candidate's score is
    its training loss (under the model, in inference mode) minus its
    irreducible loss (under `irreducible_model`, a model trained on
    held-out data; see `train_irreducible_model`). Each step draws
    `presample` candidates uniformly with replacement, ten times the batch
    by default, and trains on the `batch_size` distinct candidates of
    largest score, 10 % of them as in the paper, without importance weights
    (the user's `sample_weight` and `class_weight` still weigh the loss).

    The irreducible losses are computed once per training index at the
    start of `fit`, with the model's compiled loss, and are
    `irreducible_losses` afterwards. The selection runs inside the train
    step (on the host when a receiver listens to `is.sample`, `is.score`
    or `is.training`). It needs random access to the data: a stream is
    refused.

    Args:
        model: A compiled `keras.Model`, trained in place.
        irreducible_model: A model with the outputs of `model`, trained on
            held-out data; it is not trained.
        presample: The number of candidates of a step (an `int`), or a
            multiple of the batch size (a `float`). Defaults to `10.0`.
        forward_batch_size: Batch size of the scoring forward passes (and
            of the irreducible losses), or `None` for the batch size.
            Defaults to `None`.

    Attributes:
        irreducible_losses: The irreducible losses of the training samples
            of the last `fit`, a NumPy array, or `None` before it.

    References:
        - [Mindermann et al., 2022](https://arxiv.org/abs/2206.07137)

    Example:

    ```python
    irreducible, (x_rest, y_rest) = train_irreducible_model(model, x, y, epochs=5)
    ReducibleLossTraining(model, irreducible).fit(x_rest, y_rest, batch_size=64)
    ```
    """

    stream_refusal = (
        "ReducibleLossTraining cannot train from a stream: it computes the "
        "irreducible loss of every training sample once and draws each "
        "step's candidates at random from all of them. Use `fit` with "
        "arrays or `fit_dataset` with a dataset of random access."
    )

    def __init__(self, model, irreducible_model, presample=10.0, forward_batch_size=None):
        if not isinstance(irreducible_model, keras.Model):
            raise ValueError(
                "`irreducible_model` must be a `keras.Model` (see "
                "`train_irreducible_model`). Received: irreducible_model of "
                f"type {type(irreducible_model).__name__}"
            )
        if forward_batch_size is not None:
            check_positive_int("forward_batch_size", forward_batch_size)
        super().__init__(model, presample)
        self.irreducible_model = irreducible_model
        self.forward_batch_size = forward_batch_size
        self.irreducible_losses = None

    def _draw_settings(self):
        return (("forward_batch_size", self.forward_batch_size),)

    def _array_plan(self, x, y, batch_size, *args):
        plan = super()._array_plan(x, y, batch_size, *args)
        x_all, y_all = plan.dataset.train_data[:]
        self.irreducible_losses = irreducible_losses(
            self.model, self.irreducible_model, x_all, y_all,
            self.forward_batch_size or plan.batch_size,
        )
        if plan.kind == "arrays":
            x_all, y_all, weights = plan.arrays
            # The index tells repeated candidates apart (exactly in float32
            # up to 2 ** 24 samples).
            columns = np.stack([
                np.asarray(weights, "float32"), self.irreducible_losses,
                np.arange(len(weights), dtype="float32"),
            ], axis=1)
            plan.arrays = (x_all, y_all, columns)
        return plan

    def _make_draw(self, plan, rows, metric):
        return ReducibleLossDraw(self.wrapper, plan.batch_size, plan.presample,
                                 self.forward_batch_size, rows)

    def _make_sampler(self, dataset, presample, batch_size):
        return ReducibleLossSampler(dataset, self.wrapper, self.irreducible_losses, presample,
                                    self.forward_batch_size)
