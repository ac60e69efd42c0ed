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
from importance_sampling.utils import checks, nested


def _check_selection(beta, history, staleness, forward_batch_size):
    """The arguments of Selective Backprop, checked; a `ValueError` names a wrong one."""
    return (
        checks.check_number("beta", beta, low=0),
        checks.check_positive_int("history", history),
        checks.check_number("staleness", staleness, low=0, integer=True),
        checks.check_number("forward_batch_size", forward_batch_size, low=1, integer=True,
                            optional=True),
    )


def _warn_few_kept(looked_at):
    warnings.warn(
        f"Selective Backprop kept fewer than a batch of samples in {looked_at} "
        "(are the losses all equal?); the batch is completed with the last "
        "samples forwarded.",
        RuntimeWarning,
        stacklevel=4,
    )


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
    """The batches of Selective Backprop.

    The sampler forwards the training set in passes over a new random
    permutation each, `forward_batch_size` samples at a time, keeps samples
    with a `LossPercentileSelector` and returns the oldest `batch_size`
    kept samples once that many wait. With `staleness = n > 0`, a sample
    whose loss was computed at most `n` passes earlier is not forwarded
    again: its recorded loss is used. `is.score` receives the losses of
    each forward batch (fresh or recorded).

    From a stream (a dataset without random access, `staleness=0` only),
    each `sample()` forwards the candidates of the current step instead,
    and returns `None` until `batch_size` kept samples wait.

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
        beta, history, staleness, forward_batch_size = _check_selection(
            beta, history, staleness, forward_batch_size
        )
        if staleness:
            check_random_access(self, dataset, "reuses the losses of each training sample")
        super().__init__(dataset, reweighting, seed)
        self.model = model
        self.beta = float(beta)
        self.history = int(history)
        self.staleness = int(staleness)
        self.forward_batch_size = forward_batch_size
        self.reset()

    def reset(self):
        count = len(self.dataset.train_data) if self.dataset.random_access else 0
        self.selector = LossPercentileSelector(self.beta, self.history, self.rng)
        self.recorded = np.zeros(count)
        self.recorded_pass = np.full(count, -1, dtype="int64")
        self.waiting = deque()
        # From a stream: the kept candidates with their data, and their count.
        self.buffer, self.buffered, self.looked_at = [], 0, 0
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
        if not self.dataset.random_access:
            return self._sample_stream(batch_size)
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
                _warn_few_kept("a whole pass over the training set")
                rest = np.setdiff1d(idxs, kept, assume_unique=True)
                kept = np.concatenate([kept, rest[:batch_size - len(self.waiting) - len(kept)]])
            self.waiting.extend(kept.tolist())
        idxs = np.array([self.waiting.popleft() for _ in range(batch_size)], dtype="int64")
        x, y = self.dataset.train_data[idxs]
        return self._batch(idxs, x, y, self.recorded[idxs])

    def _sample_stream(self, batch_size):
        """The next batch from the candidates of a stream, or `None` while too few wait.

        The step's candidates (`StreamCandidates`) are forwarded and the
        kept ones, with their data, join the buffer.
        """
        idxs, x, y = self.dataset.train_data.draw(batch_size, self.rng)
        losses = self.model.score(x, y, batch_size=len(idxs))
        self.forward_samples += len(idxs)
        signals.score.send({"idxs": idxs, "scores": losses})
        kept = self.selector.keep(losses)
        self.looked_at += len(idxs)
        if self.looked_at > self.history + batch_size and (
                self.buffered + kept.sum() < batch_size):
            # As many candidates as the history kept too few (equal losses, say).
            _warn_few_kept(f"{self.looked_at} samples")
            kept[np.flatnonzero(~kept)[:batch_size - self.buffered - kept.sum()]] = True
        self.buffer.append(nested.take((idxs, x, y, losses), np.flatnonzero(kept)))
        self.buffered += int(kept.sum())
        if self.buffered < batch_size:
            return None
        buffered = nested.concatenate(self.buffer)
        idxs, x, y, scores = nested.take(buffered, np.arange(batch_size))
        rest = nested.take(buffered, np.arange(batch_size, self.buffered))
        self.buffer, self.buffered = [rest], self.buffered - batch_size
        self.looked_at = 0
        return self._batch(idxs, x, y, scores)

    def _batch(self, idxs, x, y, scores):
        batch_size = len(idxs)
        weights = self.reweighting.sample_weights(np.arange(batch_size), np.ones(batch_size))
        self.backward_samples += batch_size
        signals.sample.send({"idxs": idxs, "xy": (x, y), "w": weights,
                             "predicted_scores": scores})
        return SampledBatch(idxs, x, y, weights, np.ones(batch_size, "float32"), scores, True)

    def get_state(self):
        return {
            **super().get_state(),
            "history": np.asarray(self.selector.losses),
            "recorded": self.recorded.copy(),
            "recorded_pass": self.recorded_pass.copy(),
            "waiting": np.asarray(self.waiting, dtype="int64"),
            "order": self.order.copy(),
            "position": self.position,
            "passes": self.passes,
        }

    def set_state(self, state):
        super().set_state(state)
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
    on the host, on one device.

    From a stream (`staleness=0` only), an epoch is one pass over the
    stream, forwarded in batches of `batch_size`: each is a step of the
    progress bar, and the optimizer updates the model when a full batch of
    kept samples waits (`optimizer.iterations` counts those updates); kept
    samples left at the end of an epoch wait for the next.

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

    stale_stream_refusal = (
        "SelectiveBackpropTraining with `staleness > 0` cannot train from a "
        "stream: it reuses the loss of each training sample, by its index. "
        "Use `fit` with arrays or `fit_dataset` with a dataset of random "
        "access, or `staleness=0`. Received: staleness={staleness}"
    )

    def __init__(self, model, beta=1.0, history=1024, staleness=0, forward_batch_size=None):
        beta, history, staleness, forward_batch_size = _check_selection(
            beta, history, staleness, forward_batch_size
        )
        super().__init__(model, presample=1)
        self.beta = float(beta)
        self.history = int(history)
        self.staleness = int(staleness)
        self.forward_batch_size = forward_batch_size
        if staleness:
            self.stream_refusal = self.stale_stream_refusal.format(staleness=staleness)
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
            if dataset.random_access and len(previous.recorded) == len(sampler.recorded):
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
