"""Selective Backprop (Jiang et al., 2019): back-propagate the samples of high loss percentile.

```python
from importance_sampling.selective_backprop import SelectiveBackpropTraining

model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
training = SelectiveBackpropTraining(model, beta=2.0)
training.fit(x_train, y_train, batch_size=64, epochs=10)
training.forward_samples, training.backward_samples
```

The samples are forwarded in passes over the shuffled training set, a batch
at a time, in inference mode. Each forwarded loss joins a history of the
`history` most recent losses, and the sample is kept with probability
`P ** beta`, `P` the fraction of the history below its loss. Kept samples
wait in a buffer; every train step back-propagates the first `batch_size`
of them, unweighted, so that all steps have the same shape. All of it runs
on the host, around Keras's train step (`host.HostSide`).
"""

import warnings
from collections import deque

import numpy as np

from importance_sampling import signals
from importance_sampling.samplers.base import BaseSampler, SampledBatch, check_random_access
from importance_sampling.selection import SelectionTraining


def _check_number(name, value, least, integer=False):
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds) or not value >= least:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"`{name}` must be {kind} of at least {least}. Received: "
                         f"{name}={value!r}")


class LossPercentileSelector:
    """Keep a sample with probability `P ** beta`, `P` its loss's percentile among recent losses.

    The losses of a forward batch join the history first; a loss's
    percentile `P` is then the fraction of the history (the `history` most
    recent losses, its own included) that is strictly below it.

    Args:
        beta: The exponent of the percentile; larger values keep fewer
            samples. A loss from the distribution of the history has a
            uniform percentile, so about `1 / (1 + beta)` of the samples
            are kept.
        history: The number of recent losses kept.
        rng: A `numpy.random.Generator`.
    """

    def __init__(self, beta, history, rng):
        self.beta = float(beta)
        self.losses = deque(maxlen=int(history))
        self.rng = rng

    def probabilities(self, losses):
        """Record `losses` and return the probability of keeping each."""
        losses = np.asarray(losses, "float64")
        self.losses.extend(losses.tolist())
        recent = np.sort(np.asarray(self.losses, "float64"))
        below = np.searchsorted(recent, losses, side="left")
        return (below / len(recent)) ** self.beta

    def keep(self, losses):
        """Record `losses` and draw which to keep (a boolean array)."""
        probabilities = self.probabilities(losses)
        return self.rng.random(len(probabilities)) < probabilities


class SelectiveBackpropSampler(BaseSampler):
    """The batches of Selective Backprop, from data with random access.

    The sampler forwards the training set in passes over a new random
    permutation each, `forward_batch_size` samples at a time, keeps samples
    with a `LossPercentileSelector` and returns the oldest `batch_size`
    kept samples once that many wait. With `staleness = n > 0`, a sample
    whose loss was computed at most `n` passes earlier is not forwarded
    again: its recorded loss is used. `is.score` receives the losses of
    each forward batch (fresh or recorded).

    Args:
        dataset: A `BaseDataset` with random access.
        reweighting: A `ReweightingPolicy` (weights 1 for the policies of
            the library).
        model: An `OracleWrapper` (anything with `score(x, y, batch_size)`).
        beta: The exponent of the selection. Defaults to `1.0`.
        history: The number of recent losses of the percentiles. Defaults
            to `1024`.
        staleness: The age in passes of the losses used without a forward
            pass; `0` forwards every sample. Defaults to `0`.
        forward_batch_size: The number of samples of a forward batch, or
            `None` for the batch size. Defaults to `None`.
        seed: Seed of the sampler's random generator.

    Attributes:
        forward_samples: The number of samples forwarded so far.
        backward_samples: The number of samples returned for training.
        passes: The number of passes over the training set begun so far.
    """

    def __init__(self, dataset, reweighting, model, beta=1.0, history=1024, staleness=0,
                 forward_batch_size=None, seed=None):
        check_random_access(self, dataset, "forwards the training set in passes")
        super().__init__(dataset, reweighting, seed)
        self.model = model
        self.beta = float(beta)
        self.history = int(history)
        self.staleness = int(staleness)
        self.forward_batch_size = forward_batch_size
        self.reset()

    def reset(self):
        count = len(self.dataset.train_data)
        self.selector = LossPercentileSelector(self.beta, self.history, self.rng)
        self.recorded = np.zeros(count)
        self.recorded_pass = np.full(count, -1, dtype="int64")
        self.waiting = deque()
        self.order = np.zeros(0, dtype="int64")
        self.position = 0
        self.passes = 0
        self.forward_samples = 0
        self.backward_samples = 0

    def _next_candidates(self, count):
        """The next `count` (fewer at a pass's end) indices of the current pass."""
        if self.position >= len(self.order):
            self.order = self.rng.permutation(len(self.recorded))
            self.position = 0
            self.passes += 1
        idxs = self.order[self.position:self.position + count]
        self.position += len(idxs)
        return idxs

    def _losses(self, idxs, chunk):
        """The losses of `idxs`: forwarded now, or recorded if recent enough.

        The samples to forward are padded (repeated) to a multiple of
        `chunk`, so that the forward passes have one shape.
        """
        age = (self.passes - 1) - self.recorded_pass[idxs]
        fresh = idxs[(self.recorded_pass[idxs] < 0) | (age > self.staleness)]
        if len(fresh):
            padded = np.resize(fresh, -(-len(fresh) // chunk) * chunk)
            x, y = self.dataset.train_data[padded]
            scores = self.model.score(x, y, batch_size=chunk)
            self.recorded[fresh] = scores[:len(fresh)]
            self.recorded_pass[fresh] = self.passes - 1
            self.forward_samples += len(fresh)
        return self.recorded[idxs]

    def sample(self, batch_size):
        chunk = self.forward_batch_size or batch_size
        looked_at = 0
        while len(self.waiting) < batch_size:
            idxs = self._next_candidates(chunk)
            losses = self._losses(idxs, chunk)
            signals.score.send({"idxs": idxs, "scores": losses})
            kept = idxs[self.selector.keep(losses)]
            looked_at += len(idxs)
            short = len(self.waiting) + len(kept) < batch_size
            if short and looked_at > len(self.recorded) + batch_size:
                # A whole pass kept too few samples (losses all equal, say):
                # the last candidates complete the batch.
                warnings.warn(
                    "Selective Backprop kept fewer than a batch of samples in a "
                    "whole pass over the training set (are the losses all "
                    "equal?); the batch is completed with the last samples "
                    "forwarded.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                rest = np.setdiff1d(idxs, kept, assume_unique=True)
                kept = np.concatenate([kept, rest[:batch_size - len(self.waiting) - len(kept)]])
            self.waiting.extend(kept.tolist())
        idxs = np.array([self.waiting.popleft() for _ in range(batch_size)], dtype="int64")
        x, y = self.dataset.train_data[idxs]
        scores = self.recorded[idxs]
        weights = self.reweighting.sample_weights(np.arange(batch_size), np.ones(batch_size))
        self.backward_samples += batch_size
        signals.sample.send({"idxs": idxs, "xy": (x, y), "w": weights,
                             "predicted_scores": scores})
        return SampledBatch(idxs, x, y, weights, np.ones(batch_size, "float32"), scores, True)

    def get_state(self):
        return {
            "history": np.asarray(self.selector.losses),
            "recorded": self.recorded.copy(),
            "recorded_pass": self.recorded_pass.copy(),
            "waiting": np.asarray(self.waiting, dtype="int64"),
            "order": self.order.copy(),
            "position": self.position,
            "passes": self.passes,
        }

    def set_state(self, state):
        self.selector.losses.clear()
        self.selector.losses.extend(np.asarray(state["history"]).tolist())
        self.recorded = state["recorded"].copy()
        self.recorded_pass = state["recorded_pass"].copy()
        self.waiting = deque(np.asarray(state["waiting"]).tolist())
        self.order = state["order"].copy()
        self.position = state["position"]
        self.passes = state["passes"]


class SelectiveBackpropTraining(SelectionTraining):
    """Selective Backprop: back-propagate the samples whose loss is high among recent losses.

    Jiang et al., "Accelerating Deep Learning by Focusing on the Biggest
    Losers", 2019 (arXiv:1910.00762). Every training sample is forwarded in
    passes over the shuffled training set, in inference mode, a batch at a
    time; it is kept with probability `P ** beta`, `P` the fraction of the
    `history` most recent losses (its batch's included) below its loss.
    Kept samples wait in a buffer, and each train step back-propagates a
    full batch of `batch_size` of them, without reweighting (the user's
    `sample_weight` and `class_weight` still weigh the loss). With
    `staleness=n`, the losses computed in the last `n` passes are reused
    instead of a new forward pass (stale Selective Backprop).

    An epoch of `fit` is `steps_per_epoch` steps (`N // batch_size` by
    default): as many back-propagated samples as there are training
    samples, for which about `1 + beta` times as many are forwarded.
    `forward_samples` and `backward_samples` count them. The sampler runs
    on the host, so it needs random access to the data (streams are
    refused) and one device.

    Args:
        model: A compiled `keras.Model`, trained in place.
        beta: The selectivity, at least 0: `0` keeps every sample, larger
            values keep fewer (about `1 / (1 + beta)` of them). Defaults to
            `1.0`.
        history: The number of recent losses that a loss's percentile is
            taken among. Defaults to `1024`.
        staleness: The age, in passes over the training set, of the losses
            that are reused instead of forwarding the sample again. `0`
            forwards every sample in every pass. Defaults to `0`.
        forward_batch_size: The number of samples forwarded together, or
            `None` for the batch size. Defaults to `None`.

    Attributes:
        sampler: The `SelectiveBackpropSampler` of the last `fit`, or
            `None`. Its history and recorded losses carry over to the next
            `fit` on as many training samples.

    References:
        - [Jiang et al., 2019](https://arxiv.org/abs/1910.00762)

    Example:

    ```python
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    SelectiveBackpropTraining(model, beta=1.0).fit(x, y, batch_size=64, epochs=10)
    ```
    """

    stream_refusal = (
        "SelectiveBackpropTraining cannot train from a stream: it forwards "
        "the training set in passes, keeps losses per training sample "
        "(`staleness`) and fills each step's batch from a buffer of kept "
        "samples, however many candidates that takes. Use `fit` with arrays "
        "or `fit_dataset` with a dataset of random access."
    )

    def __init__(self, model, beta=1.0, history=1024, staleness=0, forward_batch_size=None):
        _check_number("beta", beta, 0)
        _check_number("history", history, 1, integer=True)
        _check_number("staleness", staleness, 0, integer=True)
        if forward_batch_size is not None:
            _check_number("forward_batch_size", forward_batch_size, 1, integer=True)
        super().__init__(model, presample=1)
        self.beta = float(beta)
        self.history = int(history)
        self.staleness = int(staleness)
        self.forward_batch_size = forward_batch_size
        self.sampler = None
        self._earlier_forward = 0
        self._earlier_backward = 0

    def _presample_size(self, batch_size):
        # The sampler forwards as many candidates as it takes to fill a batch.
        return batch_size

    def _make_sampler(self, dataset, presample, batch_size):
        sampler = SelectiveBackpropSampler(
            dataset, self.reweighting, self.wrapper, beta=self.beta, history=self.history,
            staleness=self.staleness, forward_batch_size=self.forward_batch_size,
        )
        previous = self.sampler
        if previous is not None:
            self._earlier_forward += previous.forward_samples
            self._earlier_backward += previous.backward_samples
            if len(previous.recorded) == len(sampler.recorded):
                sampler.set_state(previous.get_state())
        self.sampler = sampler
        return sampler

    @property
    def forward_samples(self):
        """The number of samples forwarded to select from, over every `fit` so far."""
        return self._earlier_forward + getattr(self.sampler, "forward_samples", 0)

    @property
    def backward_samples(self):
        """The number of samples back-propagated, over every `fit` so far."""
        return self._earlier_backward + getattr(self.sampler, "backward_samples", 0)
