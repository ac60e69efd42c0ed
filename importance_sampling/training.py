"""Train a compiled Keras model with importance sampling.

```python
from importance_sampling.training import ImportanceTraining

model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
ImportanceTraining(model).fit(x_train, y_train, batch_size=128, epochs=3)
model.evaluate(x_test, y_test)  # the model was trained in place
```

`fit` is `keras.Model.fit`: for the duration of the call the model's
`train_step` is an importance-sampling step (`importance_sampling.step`), and
Keras's own `fit` drives it, with its callbacks, progress bar, validation,
data adapters, `steps_per_execution` and distribution.
"""

from importance_sampling.fitting import BaseImportanceTraining, check_positive_int
from importance_sampling.samplers import (
    AdaptiveAdditiveSmoothingSampler,
    AdditiveSmoothingSampler,
    LSTMSampler,
    ModelSampler,
)


def _smoothed(sampler, smooth, adaptive_smoothing):
    """Wrap `sampler` in the smoothing that the training arguments ask for."""
    if smooth == 0:
        return sampler
    if adaptive_smoothing:
        return AdaptiveAdditiveSmoothingSampler(sampler, smooth)
    return AdditiveSmoothingSampler(sampler, smooth)


class ImportanceTraining(BaseImportanceTraining):
    """Train a model with importance sampling, scoring samples by their loss.

    For every batch, `presample` samples are drawn uniformly and their loss is
    computed with a forward pass of the model; the batch is then drawn from
    them in proportion to their loss, and the step is weighted with the
    biased importance weights of `BiasedReweightingPolicy(k)`. All of it
    runs inside the model's train step, which Keras's own `fit` drives
    (without adaptive smoothing, which keeps its moving average on the host).

    Args:
        model: A compiled `keras.Model`, trained in place. With several
            outputs, a sample's score is its total loss (the
            `loss_weights`-weighted sum over the outputs).
        k: Bias exponent in `(-inf, 1]`; smaller values focus more on hard
            examples, `k=1` is unbiased. Defaults to `0.5`.
        smooth: Added to every score before sampling, pulling the
            distribution towards uniform. Defaults to `0.0`.
        adaptive_smoothing: When `True`, `smooth` is multiplied by a moving
            average of the scores (the training loss). Defaults to `False`.
        presample: Number of samples scored per batch (an `int`), or a
            multiple of the batch size (a `float`, e.g. `3.0`); must be
            larger than the batch size. Defaults to `256`.
        forward_batch_size: Batch size of the scoring forward passes.
            Defaults to `128`.

    Raises:
        ValueError: for an uncompiled model, `k > 1` or a negative `smooth`.

    References:
        - [Katharopoulos & Fleuret, 2017](https://arxiv.org/abs/1706.00043)
        - [Katharopoulos & Fleuret, 2018](https://arxiv.org/abs/1803.00942)

    Example:

    ```python
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    ImportanceTraining(model, k=0.5).fit(x, y, batch_size=128, epochs=3)
    ```
    """

    def __init__(self, model, k=0.5, smooth=0.0, adaptive_smoothing=False,
                 presample=256, forward_batch_size=128):
        super().__init__(model, k, smooth, adaptive_smoothing, presample)
        check_positive_int("forward_batch_size", forward_batch_size)
        self.forward_batch_size = forward_batch_size

    def _make_sampler(self, dataset, presample):
        sampler = ModelSampler(
            dataset, self.reweighting, self.wrapper,
            large_batch=presample,
            forward_batch_size=self.forward_batch_size,
        )
        return _smoothed(sampler, self.smooth, self.adaptive_smoothing)

    def _draw_settings(self):
        # The adaptive smoothing keeps a moving average on the host.
        if self.adaptive_smoothing and self.smooth > 0:
            return None
        return (("forward_batch_size", self.forward_batch_size), ("smooth", self.smooth))


class ApproximateImportanceTraining(BaseImportanceTraining):
    """Train a model with importance sampling on predicted losses.

    A small LSTM predicts the loss of each sample from the history of its
    observed losses and its class (see `LSTMSampler`), so no forward pass of
    the model is spent on scoring. It can be faster than `ImportanceTraining`
    for a model whose forward pass costs more than the predictor's over the
    presample (for small models it is slower; see `docs/benchmarks.md`), but
    it is less accurate, and it needs random access to the data and integer
    or one-hot class targets.

    Args:
        model: A compiled `keras.Model` with one output; it is trained in
            place.
        k: Bias exponent in `(-inf, 1]`. Defaults to `0.5`.
        smooth: Added to every predicted score before sampling. Defaults to
            `0.0`.
        adaptive_smoothing: When `True`, `smooth` is multiplied by a moving
            average of the scores. Defaults to `False`.
        presample: Number of samples whose score is predicted per batch.
            Defaults to `2048`.
    """

    def __init__(self, model, k=0.5, smooth=0.0, adaptive_smoothing=False,
                 presample=2048):
        super().__init__(model, k, smooth, adaptive_smoothing, presample)

    stream_refusal = (
        "ApproximateImportanceTraining cannot train from a stream: its "
        "loss predictor keeps a history per training sample and needs the "
        "class of every sample, which a stream does not provide. Use "
        "`fit` with arrays, or `ImportanceTraining`."
    )

    def _make_sampler(self, dataset, presample):
        sampler = LSTMSampler(dataset, self.reweighting, presample=presample)
        return _smoothed(sampler, self.smooth, self.adaptive_smoothing)
