"""Approximate importance sampling: predict each sample's loss."""

import keras
import numpy as np

from importance_sampling.keras_internals import model_supports_jit
from importance_sampling.samplers.base import BaseSampler, Candidates, check_random_access
from importance_sampling.samplers.labels import class_labels
from importance_sampling.utils import checks

# With `log=True`, losses below this (zero) are read as this.
_SMALLEST_LOSS = 1e-12


def _loss_predictor(history, num_classes, units=32):
    """Masked 2-layer LSTM over the loss history, joined with a class embedding."""
    losses = keras.Input((history, 1), name="loss_history")
    mask = keras.Input((history,), dtype="bool", name="history_mask")
    labels = keras.Input((1,), dtype="int32", name="label")
    sequence = keras.layers.LSTM(units, return_sequences=True)(losses, mask=mask)
    summary = keras.layers.LSTM(units)(sequence, mask=mask)
    embedding = keras.layers.Flatten()(keras.layers.Embedding(num_classes, units)(labels))
    joined = keras.layers.Concatenate()([summary, embedding])
    predictor = keras.Model([losses, mask, labels], keras.layers.Dense(1)(joined))
    # XLA fuses the small operations of the LSTM cells, which halves the
    # predictor's time per call even on a CPU, where Keras would not use it.
    # (On PyTorch it would mean `torch.compile`, which recompiles for every
    # presample size.)
    jit_compile = keras.backend.backend() != "torch" and model_supports_jit(predictor)
    predictor.compile(optimizer="adam", loss="mse", jit_compile=jit_compile)
    return predictor


class LSTMSampler(BaseSampler):
    """Sample by losses predicted from each sample's loss history and class.

    Per sample, the last `history` observed losses are kept (initialised to
    `log(num_classes)`). A small LSTM, trained online towards the observed
    losses, predicts the loss of `presample` uniform candidates; the batch is
    drawn from them in proportion to the (non-negative) prediction. With
    `log=True` the history and the regression are in log space, and the
    prediction is exponentiated. The first `warmup` batches are uniform.

    Args:
        dataset: A `BaseDataset` with random access and class targets.
        reweighting: A `ReweightingPolicy`.
        presample: Number of candidates per batch. Defaults to `2048`.
        history: Number of past losses kept per sample. Defaults to `10`.
        log: Regress the logarithm of the losses. Defaults to `False`.
        warmup: Number of initial uniform batches. Defaults to `100`.
        seed: Seed of the sampler's random generator.

    Raises:
        ValueError: for a streamed dataset or targets that are not classes.
    """

    def __init__(self, dataset, reweighting, presample=2048, history=10,
                 log=False, warmup=100, seed=None):
        check_random_access(self, dataset, "keeps a history and the class of every sample")
        super().__init__(dataset, reweighting, seed)
        self.presample = checks.check_positive_int("presample", presample)
        self.history = checks.check_positive_int("history", history)
        self.log = checks.check_bool("log", log)
        self.warmup = checks.check_number("warmup", warmup, low=0, integer=True)
        self.labels, self.num_classes = class_labels(dataset.train_data[:][1])
        self.predictor = _loss_predictor(history, self.num_classes)
        self.reset()

    def reset(self):
        count = len(self.labels)
        initial = self._regressed(np.log(self.num_classes))
        self.losses = np.full((count, self.history), initial, "float32")
        self.counts = np.zeros(count, dtype="int64")
        self.steps = 0

    def _regressed(self, losses):
        """The losses as the predictor sees them: their log with `log=True`."""
        if self.log:
            return np.log(np.maximum(losses, _SMALLEST_LOSS))
        return losses

    def _predictor_inputs(self, idxs):
        observed = np.maximum(self.counts[idxs], 1)[:, None]
        mask = np.arange(self.history)[None, :] >= self.history - observed
        return [self.losses[idxs, :, None], mask, self.labels[idxs, None]]

    def candidates(self, batch_size):
        if self.steps < self.warmup:
            return Candidates(self.rng.integers(0, len(self.labels), size=batch_size))
        idxs = self.rng.integers(0, len(self.labels), size=self.presample)
        predicted = np.asarray(
            self.predictor.predict_on_batch(self._predictor_inputs(idxs)), "float64"
        )[:, 0]
        if self.log:
            return Candidates(idxs, scores=np.exp(predicted))
        return Candidates(idxs, scores=np.maximum(predicted, 0))

    def update(self, idxs, scores):
        scores = self._regressed(np.asarray(scores, dtype="float32"))
        self.predictor.train_on_batch(self._predictor_inputs(idxs), scores)
        self.losses[idxs, :-1] = self.losses[idxs, 1:]
        self.losses[idxs, -1] = scores
        self.counts[idxs] += 1
        self.steps += 1

    def get_state(self):
        optimizer = {}
        self.predictor.optimizer.save_own_variables(optimizer)
        return {
            **super().get_state(),
            "losses": self.losses.copy(),
            "counts": self.counts.copy(),
            "steps": self.steps,
            "predictor_weights": self.predictor.get_weights(),
            "predictor_optimizer": optimizer,
        }

    def set_state(self, state):
        super().set_state(state)
        self.losses = state["losses"].copy()
        self.counts = state["counts"].copy()
        self.steps = state["steps"]
        self.predictor.set_weights(state["predictor_weights"])
        optimizer = self.predictor.optimizer
        if not optimizer.built:
            optimizer.build(self.predictor.trainable_variables)
        optimizer.load_own_variables(state["predictor_optimizer"])
