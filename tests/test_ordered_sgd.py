"""Ordered SGD: a step's gradient is the gradient of the mean of the batch's
`q` largest losses, computed by hand; `q` as a fraction or a count, and the
authors' schedule halving it."""

import keras
import numpy as np
import pytest
from conftest import blobs, expected_sgd_step, sgd_classifier

from importance_sampling import signals
from importance_sampling.ordered_sgd import (
    SCHEDULE_ACCURACIES,
    OrderedSGDTraining,
    OrderedSGDWrapper,
    _HalvingSchedule,
    top_count,
    top_loss_weights,
)

X, LABELS = blobs(64, num_classes=3)
LEARNING_RATE = 0.5


class OneBatch(keras.utils.PyDataset):
    """A stream of one batch: the candidates of the step are known."""

    def __init__(self, x, y):
        super().__init__()
        self.x, self.y = x, y

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return self.x, self.y


def losses_by_hand(weights, x, y):
    """Per-sample cross-entropy of a Dense-tanh, Dense-softmax model, with NumPy."""
    kernel_1, bias_1, kernel_2, bias_2 = (np.asarray(w, "float64") for w in weights)
    logits = np.tanh(np.asarray(x, "float64") @ kernel_1 + bias_1) @ kernel_2 + bias_2
    logits -= logits.max(axis=1, keepdims=True)
    log_probabilities = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_probabilities[np.arange(len(x)), np.asarray(y).reshape(-1)]


def top_q_step_by_hand(model, x, y, count):
    """The loss and the weights after one SGD step on the mean of the `count` largest losses."""
    losses = losses_by_hand(model.get_weights(), x, y)
    top = np.argsort(-losses)[:count]
    mask = np.zeros(len(x))
    mask[top] = 1.0
    # mean(step_weights * loss) over the batch is the mean over the top `count`
    loss, after = expected_sgd_step(model, x, y, mask * len(x) / count, LEARNING_RATE)
    assert loss == pytest.approx(losses[top].mean())
    return loss, after


@pytest.mark.parametrize("q, count", [(0.25, 4), (0.5, 8), (5, 5), (1.0, 16)],
                         ids=["quarter", "half", "five", "all"])
@pytest.mark.parametrize("where", ["in-step", "host"])
def test_a_step_is_the_gradient_of_the_top_q_mean_computed_by_hand(q, count, where):
    model = sgd_classifier(LEARNING_RATE)
    x, y = X[:16], LABELS[:16]
    expected_loss, expected = top_q_step_by_hand(model, x, y, count)
    training = OrderedSGDTraining(model, q=q)
    listened = []

    def listen(payload):
        listened.append(payload)

    if where == "host":  # a receiver of is.sample moves the draw to the host
        signals.sample.connect(listen)
    try:
        history = training.fit(OneBatch(x, y), batch_size=16, verbose=0)
    finally:
        signals.sample.disconnect(listen)
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert history.history["loss"][0] == pytest.approx(expected_loss, rel=1e-5)
    assert history.history["q"] == [count]
    assert int(model.optimizer.iterations) == 1
    assert bool(listened) == (where == "host")


def test_the_users_weights_weigh_the_kept_losses():
    model = sgd_classifier(LEARNING_RATE)
    x, y = X[:16], LABELS[:16]
    weights = np.linspace(0.5, 2.0, 16).astype("float32")
    losses = losses_by_hand(model.get_weights(), x, y)
    mask = np.zeros(16)
    mask[np.argsort(-losses)[:8]] = 1.0  # ranked by the unweighted loss
    _, expected = expected_sgd_step(model, x, y, weights * mask * 2.0, LEARNING_RATE)

    class Weighted(OneBatch):
        def __getitem__(self, index):
            return self.x, self.y, weights

    OrderedSGDTraining(model).fit(Weighted(x, y), batch_size=16, verbose=0)
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_top_loss_weights_keep_exactly_count_losses_even_with_ties():
    losses = keras.ops.convert_to_tensor(np.array([0.1, 3.0, 0.5, 3.0, 3.0, 0.2], "float32"))
    weights = keras.ops.convert_to_numpy(top_loss_weights(losses, 2.0))
    assert np.count_nonzero(weights) == 2
    assert set(np.flatnonzero(weights)) <= {1, 3, 4}
    np.testing.assert_allclose(weights[weights > 0], 3.0)  # 6 losses / 2
    weights = keras.ops.convert_to_numpy(top_loss_weights(losses, 6.0))
    np.testing.assert_allclose(weights, 1.0)


def test_q_is_a_fraction_of_the_batch_or_a_count():
    assert top_count(0.5, 64) == 32
    assert top_count(0.01, 16) == 1
    assert top_count(1.0, 16) == 16
    assert top_count(7, 16) == 7
    with pytest.raises(ValueError, match="must not exceed `batch_size`"):
        top_count(17, 16)
    model = sgd_classifier()
    for q in (0, 0.0, 1.5, -2, True, "half", None):
        with pytest.raises(ValueError, match="`q` must be"):
            OrderedSGDTraining(model, q=q)
    with pytest.raises(ValueError, match="must not exceed"):
        OrderedSGDTraining(model, q=32).fit(X, LABELS, batch_size=16, verbose=0)


def test_the_schedule_halves_q_as_the_accuracy_passes_the_authors_thresholds():
    assert SCHEDULE_ACCURACIES == (0.80, 0.90, 0.95, 0.995)
    training = OrderedSGDTraining(sgd_classifier(), q=0.5, schedule=True)

    class Counter:
        restarts = 0

        def restart(self):
            self.restarts += 1

    counter = Counter()
    schedule = _HalvingSchedule(training, counter)
    counts = []
    for accuracy in (0.5, 0.79, 0.80, 0.85, 0.96, 0.90, 0.995, 1.0):
        schedule.on_epoch_end(0, {"accuracy": accuracy, "loss": 1.0})
        counts.append(training.count(64))
    # 32 for half of 64, halved at 80 %, then twice at once past 90 and 95 %,
    # never undone by a lower accuracy, and once more at 99.5 %
    assert counts == [32, 32, 16, 16, 4, 4, 2, 2]
    assert training.halvings == 4 and counter.restarts == 3
    assert training.count(8) == 1  # never below one sample
    with pytest.raises(ValueError, match="accuracy metric"):
        schedule.on_epoch_end(0, {"loss": 1.0})


def test_the_schedule_runs_in_fit_and_its_count_reaches_the_step():
    model = sgd_classifier(LEARNING_RATE)
    training = OrderedSGDTraining(model, q=0.5, schedule=True, accuracy="accuracy")
    history = training.fit(X, LABELS, batch_size=16, epochs=3, verbose=0)
    accuracies, counts = history.history["accuracy"], history.history["q"]
    assert counts[0] == 8
    for epoch in range(1, 3):
        passed = sum(max(accuracies[:epoch]) >= t for t in SCHEDULE_ACCURACIES)
        assert counts[epoch] == max(1, 8 // 2**passed)
    # a later `fit` goes on with the halved count
    more = training.fit(X, LABELS, batch_size=16, epochs=1, verbose=0)
    assert more.history["q"][0] <= counts[-1]


@pytest.mark.parametrize("q, count", [(0.25, 4), (6, 6)], ids=["quarter", "six"])
def test_the_wrapper_of_host_loops_takes_the_same_step(q, count):
    model = sgd_classifier(LEARNING_RATE)
    x, y = X[16:32], LABELS[16:32]
    expected_loss, expected = top_q_step_by_hand(model, x, y, count)
    loss, _, scores = OrderedSGDWrapper(model, q=q).train_batch(x, y, np.ones((16, 1)))
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert loss == pytest.approx(expected_loss, rel=1e-5) and scores.shape == (16,)
