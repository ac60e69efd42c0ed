"""Train a compiled Keras model with importance sampling.

```python
from importance_sampling.training import ImportanceTraining

model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
ImportanceTraining(model).fit(x_train, y_train, batch_size=128, epochs=3)
model.evaluate(x_test, y_test)  # the model was trained in place
```

Every class's `fit` is `keras.Model.fit` (see `importance_sampling.fitting`):
the seed's `ImportanceTraining` (alias `BiasedImportanceTraining`) and
`ApproximateImportanceTraining`, the 2018 method `UnbiasedImportanceTraining`
and its variants `ConstantVarianceImportanceTraining`,
`ConstantTimeImportanceTraining` and `SVRG`; and other ways to choose the
samples: `SelectiveTraining` (loss-sorted selection), `InfoBatchTraining`,
`SelectiveBackpropTraining`, `OrderedSGDTraining` and `ReducibleLossTraining`
(RHO-LOSS).
"""

from importance_sampling.constant import (
    ConstantTimeImportanceTraining,
    ConstantVarianceImportanceTraining,
)
from importance_sampling.fitting import BaseImportanceTraining, check_positive_int
from importance_sampling.infobatch import InfoBatchTraining
from importance_sampling.ordered_sgd import OrderedSGDTraining
from importance_sampling.rho_loss import ReducibleLossTraining
from importance_sampling.samplers import (
    AdaptiveAdditiveSmoothingSampler,
    AdditiveSmoothingSampler,
    ConditionalStartSampler,
    LSTMSampler,
    ModelSampler,
    VarianceReductionCondition,
)
from importance_sampling.selective import SelectiveTraining
from importance_sampling.selective_backprop import SelectiveBackpropTraining
from importance_sampling.svrg import SVRG

__all__ = [
    "ApproximateImportanceTraining",
    "BiasedImportanceTraining",
    "ConstantTimeImportanceTraining",
    "ConstantVarianceImportanceTraining",
    "ImportanceTraining",
    "InfoBatchTraining",
    "OrderedSGDTraining",
    "ReducibleLossTraining",
    "SVRG",
    "SelectiveBackpropTraining",
    "SelectiveTraining",
    "UnbiasedImportanceTraining",
]


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

    The 2018 method (Katharopoulos & Fleuret) is reached by its arguments:
    `score="gnorm"` scores by an upper bound of the gradient norm, `k=1`
    gives unbiased weights, and `tau_th` samples uniformly, without scoring,
    until importance sampling reduces the variance enough to pay for the
    scoring; `UnbiasedImportanceTraining` has that method's defaults.

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
        forward_batch_size: Batch size of the scoring forward passes, or
            `None` for the batch size. Defaults to `128`.
        score: What a sample is scored by: `"loss"`, `"gnorm"` (the norm of
            the loss gradient at `layer`'s pre-activation output, an upper
            bound of the gradient norm up to a constant; one forward pass),
            `"full_gnorm"` (the exact per-sample gradient norm; slow) or
            `"acc"` (1 if misclassified, else 0; zero scores need `smooth`).
            Defaults to `"loss"`.
        layer: For `score="gnorm"`, the layer, or its name, at whose
            pre-activation output the gradient is taken: one with an
            `activation` argument (e.g. `Dense(10, activation="softmax")`)
            or an `Activation` layer. Defaults to the last layer.
        tau_th: `None` (the default) samples by importance at every step.
            A number, or `"auto"` for `(B + 3 b) / (3 b)` with `B` the
            presample and `b` the batch size, draws the batches uniformly,
            without scoring, while the moving average of the variance
            reduction `tau` (in the logs of `fit`) is at most `tau_th`.

    Raises:
        ValueError: for an uncompiled model, `k > 1`, a negative `smooth`,
            an unknown `score` or a `layer` without an activation.

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
                 presample=256, forward_batch_size=128, score="loss", layer=None,
                 tau_th=None):
        if forward_batch_size is not None:
            check_positive_int("forward_batch_size", forward_batch_size)
        super().__init__(model, k, smooth, adaptive_smoothing, presample,
                         score=score, layer=layer, tau_th=tau_th)
        self.forward_batch_size = forward_batch_size

    def _make_sampler(self, dataset, presample, batch_size):
        sampler = ModelSampler(
            dataset, self.reweighting, self.wrapper,
            large_batch=presample,
            forward_batch_size=self.forward_batch_size,
        )
        sampler = _smoothed(sampler, self.smooth, self.adaptive_smoothing)
        threshold = self.tau_threshold(batch_size, presample)
        if threshold is None:
            return sampler
        return ConditionalStartSampler(sampler, VarianceReductionCondition(threshold))

    def _draw_settings(self):
        # The adaptive smoothing keeps a moving average on the host.
        if self.adaptive_smoothing and self.smooth > 0:
            return None
        return (("forward_batch_size", self.forward_batch_size), ("smooth", self.smooth))


class UnbiasedImportanceTraining(ImportanceTraining):
    """Importance sampling as in Katharopoulos & Fleuret (2018).

    The samples are scored by an upper bound of their gradient norm
    (`score="gnorm"`), the steps are weighted without bias (`k=1`), and the
    batches are drawn uniformly until importance sampling reduces the
    variance of the gradient enough to pay for the scoring: while the moving
    average of `tau` is below `tau_th`, no candidate is scored.

    It is `ImportanceTraining` of the original library's later releases,
    with their arguments and defaults; see `ImportanceTraining` for them.

    Args:
        model: A compiled `keras.Model`, trained in place.
        presample: Candidates per batch, an `int`, or a multiple of the
            batch size, a `float`. Defaults to `3.0`.
        tau_th: The threshold of `tau`; `None` (the default) is `"auto"`,
            `(B + 3 b) / (3 b)`.
        forward_batch_size: Batch size of the scoring forward passes.
            Defaults to `None`, the batch size.
        score: `"gnorm"` (the default), `"loss"`, `"full_gnorm"` or `"acc"`.
        layer: The layer of `score="gnorm"`. Defaults to the last layer.

    References:
        - [Katharopoulos & Fleuret, 2018](https://arxiv.org/abs/1803.00942)

    Example:

    ```python
    model.compile("sgd", "categorical_crossentropy", metrics=["accuracy"])
    UnbiasedImportanceTraining(model).fit(x, y, batch_size=128, epochs=3)
    ```
    """

    def __init__(self, model, presample=3.0, tau_th=None, forward_batch_size=None,
                 score="gnorm", layer=None):
        super().__init__(
            model, k=1.0, presample=presample, forward_batch_size=forward_batch_size,
            score=score, layer=layer, tau_th="auto" if tau_th is None else tau_th,
        )


BiasedImportanceTraining = ImportanceTraining
"""The name of `ImportanceTraining` in the original library's later releases."""


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

    def _make_sampler(self, dataset, presample, batch_size):
        sampler = LSTMSampler(dataset, self.reweighting, presample=presample)
        return _smoothed(sampler, self.smooth, self.adaptive_smoothing)
