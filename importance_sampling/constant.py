"""Importance training at constant variance or constant time (Katharopoulos & Fleuret, 2018).

```python
from importance_sampling.constant import ConstantVarianceImportanceTraining

model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
training = ConstantVarianceImportanceTraining(model)
training.fit(x_train, y_train, batch_size=128, epochs=3)
training.backward_samples  # the samples back-propagated, fewer than 3 epochs' worth
```

Both classes draw uniform batches until the variance reduction `tau` of the
scores is large enough, then change the size of the steps (see
`importance_sampling.samplers.constant`): their batches are drawn on the
host, one Keras train step per batch, with unbiased importance weights.
"""

from importance_sampling.fitting import BaseImportanceTraining
from importance_sampling.samplers.constant import (
    ConstantTimeSampler,
    ConstantVarianceSampler,
    check_backward_time,
    constant_variance_threshold,
)

class HostStepsTraining(BaseImportanceTraining):
    """A training class whose batches the sampler draws on the host, from random access data.

    Its steps may have any number of items, and its `fit` keeps the count of
    the samples they trained on.

    Attributes:
        sampler: The sampler of the last `fit`, or `None`.
    """

    stream_refusal = (
        "{name} cannot train from a stream: its sampler draws the samples of "
        "each step at random from all of the training data. Use `fit` with "
        "arrays or `fit_dataset` with a dataset of random access."
    )

    def __init__(self, model, score="loss", layer=None):
        super().__init__(model, 1.0, 0.0, False, 1, score=score, layer=layer)
        self.stream_refusal = self.stream_refusal.format(name=type(self).__name__)
        self.sampler = None
        self._earlier_backward_samples = 0
        self._earlier_scored_samples = 0

    def _presample_size(self, batch_size):
        # The sampler decides how many candidates a step scores.
        return batch_size

    def _keep(self, sampler):
        """Keep `sampler` as the one of the current `fit`, and the counts of the last."""
        if self.sampler is not None:
            self._earlier_backward_samples += getattr(self.sampler, "backward_samples", 0)
            self._earlier_scored_samples += getattr(self.sampler, "scored_samples", 0)
        self.sampler = sampler
        return sampler

    @property
    def backward_samples(self):
        """The number of samples back-propagated by the train steps of every `fit` so far."""
        return self._earlier_backward_samples + getattr(self.sampler, "backward_samples", 0)

    @property
    def scored_samples(self):
        """The number of samples scored outside the train steps (forward passes only)."""
        return self._earlier_scored_samples + getattr(self.sampler, "scored_samples", 0)

class ConstantVarianceImportanceTraining(HostStepsTraining):
    """Train on fewer samples per step at the variance of a uniform batch.

    Every step draws `batch_size` samples uniformly. Once the moving average
    of the variance reduction `tau` of their scores exceeds `1 /
    (backward_time / (1 + backward_time) - extra_samples)`, the step scores
    them and back-propagates only about `(1 / tau + extra_samples) *
    batch_size` of them, drawn in proportion to the scores with unbiased
    weights: about the same gradient variance for fewer backward passes.
    See `ConstantVarianceSampler`. `backward_samples` counts the samples
    back-propagated.

    Args:
        model: A compiled `keras.Model`, trained in place.
        backward_time: The time of a backward pass, in forward passes.
            Defaults to `2.0`.
        extra_samples: The share of the batch size trained on beyond
            `batch_size / tau`. Defaults to `0.2`.
        score: What a sample is scored by: `"gnorm"` (the default),
            `"loss"`, `"full_gnorm"` or `"acc"`; see `ImportanceTraining`.
        layer: For `score="gnorm"`, the layer at whose pre-activation output
            the gradient is taken. Defaults to the last layer.

    Raises:
        ValueError: unless `backward_time > 0` and `0 <= extra_samples <
            backward_time / (1 + backward_time)`.

    References:
        - [Katharopoulos & Fleuret, 2018](https://arxiv.org/abs/1803.00942)
    """

    def __init__(self, model, backward_time=2.0, extra_samples=0.2, score="gnorm",
                 layer=None):
        constant_variance_threshold(backward_time, extra_samples)
        super().__init__(model, score=score, layer=layer)
        self.backward_time = float(backward_time)
        self.extra_samples = float(extra_samples)

    def _make_sampler(self, dataset, presample, batch_size):
        return self._keep(ConstantVarianceSampler(
            dataset, self.reweighting, self.wrapper,
            backward_time=self.backward_time, extra_samples=self.extra_samples,
        ))

class ConstantTimeImportanceTraining(HostStepsTraining):
    """Spend the time of a uniform step on a better gradient.

    Every step is a uniform batch of `batch_size` until the moving average of
    the variance reduction `tau` of the scores exceeds 2. Afterwards, in the
    time of a uniform step (`(1 + backward_time) * batch_size` forward
    passes), it scores more candidates than the batch size and trains on
    fewer samples, drawn from them in proportion to the scores with unbiased
    weights. See `ConstantTimeSampler`. `backward_samples` counts the
    samples back-propagated, `scored_samples` the candidates scored.

    Args:
        model: A compiled `keras.Model`, trained in place.
        backward_time: The time of a backward pass, in forward passes.
            Defaults to `2.0`.
        score: What a sample is scored by: `"gnorm"` (the default),
            `"loss"`, `"full_gnorm"` or `"acc"`; see `ImportanceTraining`.
        layer: For `score="gnorm"`, the layer at whose pre-activation output
            the gradient is taken. Defaults to the last layer.

    Raises:
        ValueError: unless `backward_time > 0`.

    References:
        - [Katharopoulos & Fleuret, 2018](https://arxiv.org/abs/1803.00942)
    """

    def __init__(self, model, backward_time=2.0, score="gnorm", layer=None):
        backward_time = check_backward_time(backward_time)
        super().__init__(model, score=score, layer=layer)
        self.backward_time = backward_time

    def _make_sampler(self, dataset, presample, batch_size):
        return self._keep(ConstantTimeSampler(
            dataset, self.reweighting, self.wrapper, backward_time=self.backward_time,
        ))
