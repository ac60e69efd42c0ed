"""Train on the top (or the bottom) of the loss ranking, re-ranked every epoch.

```python
from importance_sampling.selective import SelectiveTraining

model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
training = SelectiveTraining(model, strategy="percentile", fraction=0.3, seed=0)
training.fit(x_train, y_train, batch_size=32, epochs=10,
             validation_data=(x_test, y_test))
training.evaluation   # the loss of the trained-on, the left-out and the test samples
```

At the start of every epoch the whole training set is ranked by loss
(inference mode, `importance_sampling.ranking`) and the epoch is one pass
over the selected instances:

- `strategy="percentile"`: the `fraction` of the instances with the
  highest losses (`from_top=False`: the lowest);
- `strategy="mass"`: the fewest highest-loss instances that carry
  `fraction` of the total loss (`from_top=False`: the lowest-loss
  instances, taken in ascending order of loss until they carry `fraction`
  of the total loss).

Unlike importance sampling, nothing is reweighted: the selected instances
are trained on as `keras.Model.fit` would train on them, and the others not
at all.
"""

import numpy as np

from importance_sampling.epochs import EpochPassTraining
from importance_sampling.ranking import STRATEGIES, _check_fraction, scored_losses, select
from importance_sampling.utils import checks, nested


class SelectiveTraining(EpochPassTraining):
    """Train each epoch on the top (or bottom) of the dataset sorted by loss.

    Every epoch starts by computing the loss of every training instance
    with the current weights (one forward pass over the training set, in
    inference mode) and selecting some of them by `strategy`; the epoch is
    then one pass over the selected instances, in batches of `batch_size`,
    so its number of steps varies with the selection. The instances are
    shuffled within the epoch unless `fit` gets `shuffle=False`, which
    visits them in the order of the data.

    After training (and after every epoch with `evaluate_every_epoch=True`)
    the mean loss of the instances of the last selection, of the instances
    left out of it and of the validation data (the test set) is computed,
    which answers "does the loss also fall for the instances not trained
    on?". With `evaluate_every_epoch=True` the epoch logs (and `History`)
    hold them as `selected_loss`, `left_out_loss` and, with validation
    data, `test_loss`.

    Args:
        model: A compiled `keras.Model`, trained in place.
        strategy: `"percentile"` (a share of the instances) or `"mass"` (a
            share of the total loss). Defaults to `"percentile"`.
        fraction: The share, in `(0, 1]`. Defaults to `0.3`.
        from_top: `True` (the default) to train on the highest losses,
            `False` on the lowest.
        seed: The seed of the shuffling; `None` draws one from NumPy's
            global generator, which `keras.utils.set_random_seed` seeds.
            With a seed (and the same initial weights), two runs select the
            same instances and end with the same weights, up to float
            rounding.
        forward_batch_size: Samples per forward pass of the ranking.
            Defaults to `128`.
        evaluate_every_epoch: Also evaluate the selected, left-out and test
            losses at the end of every epoch. Defaults to `False`.

    Attributes:
        selections: The indices selected in each epoch of the last `fit`,
            in ranking order.
        selection_losses: The per-sample losses that each selection was
            made from.
        evaluation: The final evaluation of the last `fit`: a dict with
            `selected_loss`, `left_out_loss`, `test_loss` (`None` without
            validation data), the number of `selected` instances and the
            number `ever_selected` in any epoch.
        epoch_evaluations: With `evaluate_every_epoch`, the same per epoch.

    Raises:
        ValueError: for an unknown `strategy` or a `fraction` outside
            `(0, 1]`.
    """

    def __init__(self, model, strategy="percentile", fraction=0.3, from_top=True,
                 seed=None, forward_batch_size=128, evaluate_every_epoch=False):
        self.strategy = checks.check_one_of("strategy", strategy, STRATEGIES)
        self.fraction = _check_fraction(fraction)
        self.from_top = checks.check_bool("from_top", from_top)
        self.evaluate_every_epoch = checks.check_bool("evaluate_every_epoch",
                                                      evaluate_every_epoch)
        super().__init__(model, seed=seed, forward_batch_size=forward_batch_size)
        self.selections = []
        self.selection_losses = []
        self.evaluation = None
        self.epoch_evaluations = []

    def _choose(self, epoch, epochs, sampler):
        losses = self.training_losses()
        selected = select(losses, self.strategy, self.fraction, self.from_top)
        self.selections.append(selected)
        self.selection_losses.append(losses)
        order = selected if self._shuffle else np.sort(selected)
        return order, None

    def _run(self, plan, epochs, callbacks, fit_kwargs):
        self.selections, self.selection_losses = [], []
        self.epoch_evaluations, self.evaluation = [], None
        return super()._run(plan, epochs, callbacks, fit_kwargs)

    def _evaluate(self, losses=None):
        """The mean losses of the last selection, of the rest and of the test data."""
        if losses is None:
            losses = self.training_losses()
        selected = np.zeros(len(losses), dtype=bool)
        selected[self.selections[-1]] = True
        ever = np.zeros(len(losses), dtype=bool)
        for indices in self.selections:
            ever[indices] = True
        result = {
            "selected_loss": float(np.mean(losses[selected])),
            "left_out_loss": float(np.mean(losses[~selected])) if (~selected).any() else None,
            "test_loss": self._test_loss(),
            "selected": int(selected.sum()),
            "ever_selected": int(ever.sum()),
        }
        return result

    def _test_loss(self):
        """The mean per-sample loss of array validation data, or `None`."""
        data = self._validation_data
        if data is None or not isinstance(data, (tuple, list)) or len(data) < 2:
            return None
        x, y = data[0], data[1]
        try:
            x, y = nested.to_numpy(x), nested.to_numpy(y)
        except Exception:
            return None
        losses = scored_losses(self.wrapper, x, y, self.forward_batch_size)
        return float(np.mean(losses)) if len(losses) else None

    def _epoch_logs(self, epoch, logs):
        if not self.evaluate_every_epoch or not self.selections:
            return {}
        result = self._evaluate()
        self.epoch_evaluations.append({"epoch": epoch, **result})
        extra = {"selected_loss": result["selected_loss"]}
        if result["left_out_loss"] is not None:
            extra["left_out_loss"] = result["left_out_loss"]
        if result["test_loss"] is not None:
            extra["test_loss"] = result["test_loss"]
        return extra

    def _end_of_training(self):
        if self.selections:
            self.evaluation = self._evaluate()
