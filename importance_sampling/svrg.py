"""Stochastic variance-reduced gradient descent: SVRG and SCSG.

```python
from importance_sampling.svrg import SVRG

model.compile(keras.optimizers.SGD(0.01), "categorical_crossentropy")
SVRG(model, B=0, B_over_b=len(x_train) // 128).fit(x_train, y_train, batch_size=128)
```

Every `B_over_b` steps the weights `w~` are kept (the snapshot) and the mean
gradient `mu` of the loss at `w~` is computed over `B * b` samples (all of
them for `B = 0`; Johnson & Zhang, 2013), and `B` grows by `B_rate` (SCSG,
Lei & Jordan, 2017). Each step draws a uniform batch and gives the model's
own optimizer the variance-reduced gradient

    grad(w; batch) - grad(w~; batch) + mu

without sample weights (the user's `sample_weight` and `class_weight` still
weigh the loss, the mean gradient included). The step needs the gradients
at two sets of weights, so it is a train step of its own on each backend
(`importance_sampling/backend/svrg_*.py`), which Keras's `fit` drives as it
drives the other training classes' steps. The snapshot and `mu` travel to it
with each batch.
"""

import importlib

import keras
import numpy as np
from keras import ops

from importance_sampling import keras_internals
from importance_sampling.backend import BACKENDS
from importance_sampling.constant import HostStepsTraining
from importance_sampling.fitting import _BuiltStep
from importance_sampling.model_wrappers import (
    OracleWrapper,
    announce_step,
    installed_train_step,
    pack_batch,
)
from importance_sampling.reweighting import NoReweightingPolicy
from importance_sampling.samplers.scsg import SCSGSampler, check_svrg_arguments
from importance_sampling.step import SCORES, USABLE, Draw, WeightedStep
from importance_sampling.utils import nested


def svrg_backend():
    """The module of the SVRG step on the running Keras backend."""
    name = keras.backend.backend()
    if name not in BACKENDS:
        raise ValueError(
            f"SVRG runs on the Keras backends {BACKENDS}. Received: KERAS_BACKEND={name!r}"
        )
    return importlib.import_module(f"importance_sampling.backend.svrg_{name}")


class SVRGStep(WeightedStep):
    """The losses of the SVRG step, written once for every backend.

    `loss()` is the model's unweighted loss (the user's weights only) at the
    current weights, in training mode; `reference_loss()` the same loss at
    other weights, whose state changes are dropped; `combine()` makes the
    variance-reduced gradient. `traces` counts the traces of the step.
    """

    def loss(self, drawn):
        self.traces += 1
        y_pred, scores = self.scorer.train_outputs(drawn.x, drawn.y)
        loss = keras_internals.compute_loss(
            self.model, drawn.x, drawn.y, y_pred, ops.stop_gradient(drawn.sample_weight)
        )
        return loss, (y_pred, ops.stop_gradient(scores))

    def reference_loss(self, drawn, weights, fixed=()):
        """The loss of `drawn` with the trainable weights set to `weights`.

        Args:
            drawn: A `Draw` (`x`, `y` and `sample_weight` are read).
            weights: Values of `model.trainable_variables`, in their order.
            fixed: `(variable, value)` pairs of the other variables to read
                (all of them, where the variables have no values of their own
                as in JAX's `fit`).
        """
        mapping = list(zip(self.model.trainable_variables, weights)) + list(fixed)
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True):
            y_pred = self.model(drawn.x, training=True)
            return keras_internals.compute_loss(
                self.model, drawn.x, drawn.y, y_pred, ops.stop_gradient(drawn.sample_weight)
            )

    @staticmethod
    def combine(at_weights, at_snapshot, mean_gradients):
        """`grad(w) - grad(w~) + mu`, variable by variable."""
        return [
            (ops.zeros_like(mu) if g is None else g) - s + mu
            for g, s, mu in zip(at_weights, at_snapshot, mean_gradients)
        ]


class SVRGWrapper(OracleWrapper):
    """Train a model with variance-reduced steps, from the host.

    `update_grad(batches)` keeps the current weights as the snapshot and
    computes the mean gradient over `batches`; `train_batch()` runs one SVRG
    step (Keras's `train_on_batch` with the SVRG train step). The scores are
    the per-sample losses. The importance weights given to `train_batch` are
    ignored.

    Args:
        model: A compiled `keras.Model`, trained in place.

    Attributes:
        reference: `(snapshot, mu)`: the weights of the last `update_grad()`
            and the mean gradient there, as tensors of the backend, or
            `None` before the first.
    """

    def __init__(self, model):
        super().__init__(model, NoReweightingPolicy(), score="loss")
        if isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer):
            raise ValueError(
                "SVRG adds gradients of different steps and cannot scale the "
                "loss: compile the model with an optimizer that is not a "
                "`LossScaleOptimizer` (a `mixed_bfloat16` policy needs none)."
            )
        self.svrg = svrg_backend()
        self.step = SVRGStep(self, return_scores=True)
        self.reference = None
        self.gradient_traces = 0
        self._gradient_function = None
        self._compiled = {}

    def _other_variables(self):
        return list(self.model.non_trainable_variables) + list(self.model.metrics_variables)

    def update_grad(self, batches):
        """Snapshot the weights and compute the mean gradient of the loss there.

        Args:
            batches: An iterable of `(x, y)` or `(x, y, sample_weight)`
                batches; the mean is over all of their samples (each batch
                counts for its number of samples).
        """
        total, count, weights = None, 0, None
        with self.backend.state_scope(self.model, self.fit_state):
            for batch in batches:
                x, y, sample_weight = (tuple(batch) + (None,))[:3]
                size = nested.num_samples(x)
                if sample_weight is None:
                    sample_weight = np.ones(size, "float32")
                self.build(x, y)
                if weights is None:
                    weights = self.svrg.copy_values(
                        [v.value for v in self.model.trainable_variables]
                    )
                    others = [v.value for v in self._other_variables()]
                gradients = self._batch_gradients(weights, others, x, y, sample_weight)
                scaled = [ops.multiply(g, float(size)) for g in gradients]
                total = scaled if total is None else [ops.add(t, g) for t, g in zip(total, scaled)]
                count += size
        if count == 0:
            raise ValueError("`update_grad` needs at least one sample. Received: no batch")
        self.reference = (weights, [ops.divide(t, float(count)) for t in total])

    def _batch_gradients(self, weights, others, x, y, sample_weight):
        if self._gradient_function is None:
            def batch_gradients(weights, others, x, y, sample_weight):
                self.gradient_traces += 1
                drawn = Draw(x, y, None, None, sample_weight, None)
                fixed = list(zip(self._other_variables(), others))
                return self.svrg.gradients(
                    lambda w: self.step.reference_loss(drawn, w, fixed), weights
                )

            self._gradient_function = self.svrg.compile_function(batch_gradients)
        x, y, sample_weight = keras.tree.map_structure(
            ops.convert_to_tensor, (x, y, np.asarray(sample_weight, "float32"))
        )
        return self._gradient_function(list(weights), list(others), x, y, sample_weight)

    def train_function(self):
        """`(train_step, train_function)` of the SVRG step for the model as compiled.

        The train function takes what Keras's takes and adds the reference to
        each batch.
        """
        model = self.model
        key = (model.steps_per_execution, model.jit_compile, id(model.optimizer))
        if key not in self._compiled:
            train_step = self.svrg.make_train_step(model, self.step)
            with installed_train_step(model, train_step):
                model.make_train_function(force=True)
                self._compiled[key] = (train_step, self._with_reference(model.train_function))
        return self._compiled[key]

    def _with_reference(self, keras_function):
        def train_function(*args):
            if self.reference is None:
                raise RuntimeError(
                    "An SVRG step needs a snapshot and its mean gradient: call "
                    "`update_grad()` before the first step."
                )
            *state, batches = args
            batch = next(iter(batches))
            return keras_function(*state, self.backend.one_batch((batch, self.reference)))

        return train_function

    def train_batch(self, x, y, w=None, metric_weights=None, sample_weight=None):
        """Run one SVRG step on a batch; see `OracleWrapper.train_batch`.

        `w` (importance weights) is ignored: SVRG steps are unweighted, but
        for the user's `sample_weight`.
        """
        self.build(x, y)
        count = nested.num_samples(x)
        ones = np.ones(count, "float32")
        packed = pack_batch(
            ones[:, None],
            ones if metric_weights is None else metric_weights,
            ones if sample_weight is None else sample_weight,
        )
        train_step, train_function = self.train_function()
        with installed_train_step(self.model, train_step, train_function):
            logs = self.model.train_on_batch(x, y, sample_weight=packed, return_dict=True)
        logs = dict(logs)
        logs.pop(USABLE)
        logs, scores = announce_step(logs, logs.pop(SCORES))
        return logs["loss"], logs, scores

    @property
    def trace_counts(self):
        """Traces of the scoring, the SVRG step and the mean-gradient function."""
        return {"score": self.score_traces, "train": self.step.traces,
                "gradient": self.gradient_traces}


class SVRG(HostStepsTraining):
    """Train a model with stochastic variance-reduced gradients (SVRG / SCSG).

    Before the first step of a `fit`, and then every `B_over_b` steps, the
    current weights become the snapshot `w~` and the mean gradient `mu` of
    the loss at `w~` is computed over `B * batch_size` distinct random
    training samples (all of them when `B = 0`); then `B * batch_size`
    becomes `min(B * batch_size * B_rate, N)`. Every step draws a uniform
    batch and applies the model's optimizer to `grad(w; batch) - grad(w~;
    batch) + mu`, without importance weights. A step costs two backward
    passes; `backward_samples` counts them, with those of the mean
    gradients.

    Args:
        model: A compiled `keras.Model`, trained in place; its optimizer
            must not be a `LossScaleOptimizer`.
        B: The number of samples of the mean gradient, as a multiple of the
            batch size, or `0` for the whole training set. Defaults to `10.0`.
        B_rate: The factor of `B` after every mean gradient. Defaults to `1.0`.
        B_over_b: The number of steps between two mean gradients. Defaults
            to `128`.

    References:
        - [Johnson & Zhang, 2013](https://papers.nips.cc/paper/4937)
        - [Lei & Jordan, 2017](https://arxiv.org/abs/1609.03261)
    """

    def __init__(self, model, B=10.0, B_rate=1.0, B_over_b=128):
        check_svrg_arguments(B, B_rate, B_over_b)
        super().__init__(model)
        self.reweighting = NoReweightingPolicy()
        self.wrapper = SVRGWrapper(model)
        self.B = float(B)
        self.B_rate = float(B_rate)
        self.B_over_b = int(B_over_b)
        self._plan_of_fit = None
        self._earlier_gradient_samples = 0

    def _plan(self, *args, **kwargs):
        plan = super()._plan(*args, **kwargs)
        self._plan_of_fit = plan
        return plan

    def _make_sampler(self, dataset, presample, batch_size):
        plan = self._plan_of_fit
        if self.sampler is not None:
            self._earlier_gradient_samples += self.sampler.gradient_samples
        sampler = SCSGSampler(
            dataset, self.reweighting, self.wrapper, B=self.B * plan.batch_size,
            B_over_b=self.B_over_b, B_rate=self.B_rate, sample_weight=plan.arrays[2],
        )
        return self._keep(sampler)

    def _built_step(self, plan):
        train_step, train_function = self.wrapper.train_function()
        parts = dict.fromkeys(_BuiltStep._fields)
        parts.update(step=self.wrapper.step, train_step=train_step,
                     train_function=train_function)
        return _BuiltStep(**parts)

    def get_state(self):
        reference = self.wrapper.reference
        if reference is not None:
            reference = keras.tree.map_structure(ops.convert_to_numpy, list(reference))
        return {**super().get_state(), "reference": reference}

    def _load_state(self, state):
        super()._load_state(state)
        reference = state["reference"]
        if reference is not None:
            reference = tuple(keras.tree.map_structure(ops.convert_to_tensor, reference))
        self.wrapper.reference = reference

    @property
    def gradient_samples(self):
        """The number of samples of the mean gradients of every `fit` so far."""
        current = 0 if self.sampler is None else self.sampler.gradient_samples
        return self._earlier_gradient_samples + current

    @property
    def trace_counts(self):
        """Traces of the scoring, the SVRG step and the mean-gradient function."""
        return self.wrapper.trace_counts
