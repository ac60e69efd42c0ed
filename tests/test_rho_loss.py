"""RHO-LOSS: the batch is the candidates of largest training loss minus
irreducible loss, not of largest training loss nor of smallest (or largest)
irreducible loss; the irreducible losses per training index; the helper that
trains the irreducible-loss model on held-out data."""

import keras
import numpy as np
import pytest
from conftest import blobs, expected_sgd_step, sgd_classifier

from importance_sampling import signals
from importance_sampling.rho_loss import (
    ReducibleLossDraw,
    ReducibleLossTraining,
    holdout_split,
    irreducible_losses,
    reducible_loss_sampler,
    repeats,
    train_irreducible_model,
)

X, LABELS = blobs(64, num_classes=3)
LEARNING_RATE = 0.5


def losses_by_hand(model, x, y):
    """Per-sample cross-entropy of a Dense-tanh, Dense-softmax model, with NumPy."""
    kernel_1, bias_1, kernel_2, bias_2 = (np.asarray(w, "float64") for w in model.get_weights())
    logits = np.tanh(np.asarray(x, "float64") @ kernel_1 + bias_1) @ kernel_2 + bias_2
    logits -= logits.max(axis=1, keepdims=True)
    log_probabilities = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -log_probabilities[np.arange(len(x)), np.asarray(y).reshape(-1)]


def top(values, count):
    return set(np.argsort(-np.asarray(values), kind="stable")[:count].tolist())


def with_weights(seed, learning_rate=LEARNING_RATE):
    """A `sgd_classifier` with weights drawn from `seed`: losses of a wide spread."""
    model = sgd_classifier(learning_rate)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    return model


def irreducible_model():
    """A model of the same architecture with other weights, as if trained elsewhere."""
    return with_weights(11)


def test_the_irreducible_losses_are_the_models_loss_on_the_other_models_predictions():
    model, other = sgd_classifier(), irreducible_model()
    losses = irreducible_losses(model, other, X, LABELS, batch_size=24)
    np.testing.assert_allclose(losses, losses_by_hand(other, X, LABELS), rtol=1e-5, atol=1e-6)


def test_the_draw_selects_by_the_difference_of_the_two_losses_not_by_either():
    model, other = with_weights(0), irreducible_model()
    x, y = X[:40], LABELS[:40]
    training_loss, irreducible = losses_by_hand(model, x, y), losses_by_hand(other, x, y)
    reducible = training_loss - irreducible
    count = 4
    chosen = top(reducible, count)
    # the three other rules pick other batches
    assert chosen != top(training_loss, count)
    assert chosen != top(-irreducible, count)
    assert chosen != top(irreducible, count)
    training = ReducibleLossTraining(model, other)
    training.wrapper.build(x, y)
    draw = ReducibleLossDraw(training.wrapper, batch_size=count, presample=40)
    columns = np.stack([np.linspace(1, 2, 40), irreducible, np.arange(40)],
                       axis=1).astype("float32")
    drawn = draw((x, y, columns))
    x_b = keras.ops.convert_to_numpy(drawn.x)
    positions = {int(np.flatnonzero((x == row).all(axis=1))[0]) for row in x_b}
    assert positions == chosen
    np.testing.assert_allclose(
        np.sort(keras.ops.convert_to_numpy(drawn.sample_weight)),
        np.sort(np.linspace(1, 2, 40)[sorted(chosen)]), rtol=1e-6,
    )
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(drawn.weights), 1.0)


def test_a_sample_drawn_twice_among_the_candidates_is_kept_once():
    repeated = keras.ops.convert_to_numpy(
        repeats(keras.ops.convert_to_tensor(np.array([3, 1, 3, 0, 1, 3], "float32")))
    )
    np.testing.assert_array_equal(repeated, [False, False, True, False, True, True])
    model, other = with_weights(0), irreducible_model()
    x, y = X[:8], LABELS[:8]
    reducible = losses_by_hand(model, x, y) - losses_by_hand(other, x, y)
    order = np.argsort(-reducible)
    # the best sample four times, the second twice, then the others once
    idxs = np.concatenate([[order[0]] * 4, [order[1]] * 2, order[2:]])
    training = ReducibleLossTraining(model, other)
    training.wrapper.build(x, y)
    columns = np.stack([np.ones(len(idxs)), losses_by_hand(other, x, y)[idxs], idxs],
                       axis=1).astype("float32")
    drawn = ReducibleLossDraw(training.wrapper, 4, len(idxs))((x[idxs], y[idxs], columns))
    x_b = keras.ops.convert_to_numpy(drawn.x)
    kept = sorted(int(np.flatnonzero((x == row).all(axis=1))[0]) for row in x_b)
    assert kept == sorted(order[:4].tolist())


def test_a_step_in_fit_trains_on_the_largest_difference_of_the_two_losses():
    # 8 training samples, 64 candidates: every sample is a candidate, and
    # the batch of 4 is the 4 (distinct) samples of largest difference.
    model, other = with_weights(0), irreducible_model()
    x, y = X[:8], LABELS[:8]
    training_loss, irreducible = losses_by_hand(model, x, y), losses_by_hand(other, x, y)
    reducible = training_loss - irreducible
    best = top(reducible, 1)  # the best by the difference is no other rule's best
    assert best != top(training_loss, 1)
    assert best != top(-irreducible, 1) and best != top(irreducible, 1)
    batch = sorted(top(reducible, 4))
    _, expected = expected_sgd_step(model, x[batch], y[batch], np.ones(4), LEARNING_RATE)
    training = ReducibleLossTraining(model, other, presample=64)
    training.fit(x, y, batch_size=4, steps_per_epoch=1, verbose=0)
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(training.irreducible_losses, irreducible, rtol=1e-5, atol=1e-6)


def test_on_the_host_the_sampler_keeps_the_largest_reducible_losses():
    model, other = sgd_classifier(LEARNING_RATE), irreducible_model()
    initial = sgd_classifier()
    initial.set_weights(model.get_weights())  # the scores are those before the step
    scored, sampled = [], []

    def on_score(payload):
        scored.append(payload)

    def on_sample(payload):
        sampled.append(payload)

    signals.score.connect(on_score)
    signals.sample.connect(on_sample)
    try:
        ReducibleLossTraining(model, other, presample=5.0).fit(
            X, LABELS, batch_size=8, steps_per_epoch=1, verbose=0
        )
    finally:
        signals.score.disconnect(on_score)
        signals.sample.disconnect(on_sample)
    (score,), (sample,) = scored, sampled
    assert len(score["idxs"]) == 40
    idxs = np.asarray(score["idxs"])
    expected = (losses_by_hand(initial, X[idxs], LABELS[idxs])
                - losses_by_hand(other, X[idxs], LABELS[idxs]))
    np.testing.assert_allclose(score["scores"], expected, rtol=1e-4, atol=1e-5)
    # the 8 distinct candidates of largest reducible loss
    distinct = {}
    for idx, value in zip(idxs, expected):
        distinct[int(idx)] = value
    kept = sorted(distinct, key=lambda i: -distinct[i])[:8]
    np.testing.assert_array_equal(np.sort(sample["idxs"]), np.sort(kept))
    np.testing.assert_array_equal(sample["w"], 1.0)


def test_streams_are_refused():
    training = ReducibleLossTraining(sgd_classifier(), irreducible_model())

    def stream():
        yield X[:16], LABELS[:16]

    with pytest.raises(NotImplementedError, match="cannot train from a stream"):
        training.fit(stream(), batch_size=4)
    with pytest.raises(ValueError, match="irreducible_model"):
        ReducibleLossTraining(sgd_classifier(), "model")


def test_holdout_split_is_a_random_partition():
    (x_train, y_train), (x_held, y_held) = holdout_split(X, LABELS, holdout=0.25, seed=0)
    assert len(x_held) == 16 and len(x_train) == 48
    rows = np.concatenate([x_train, x_held])
    assert np.unique(rows, axis=0).shape[0] == 64
    assert {tuple(r) for r in rows} == {tuple(r) for r in X}
    for x_part, y_part in ((x_train, y_train), (x_held, y_held)):
        positions = [int(np.flatnonzero((X == r).all(axis=1))[0]) for r in x_part]
        np.testing.assert_array_equal(y_part, LABELS[positions])
    assert not np.array_equal(x_held, X[:16])  # not simply the first samples
    with pytest.raises(ValueError, match="holdout"):
        holdout_split(X, LABELS, holdout=1.0)


def test_train_irreducible_model_trains_a_fresh_copy_on_the_held_out_part():
    model = sgd_classifier(LEARNING_RATE)
    before = model.get_weights()
    other, (x_rest, y_rest) = train_irreducible_model(
        model, X, LABELS, holdout=0.5, seed=1, epochs=2, batch_size=8, verbose=0
    )
    assert other is not model and len(x_rest) == len(y_rest) == 32
    for kept, now in zip(before, model.get_weights()):
        np.testing.assert_array_equal(kept, now)  # the model is not trained
    assert [w.shape for w in other.get_weights()] == [w.shape for w in before]
    assert int(other.optimizer.iterations) == 2 * 4  # 2 epochs of 32 held-out samples
    assert other.optimizer is not model.optimizer
    (_, _), (x_held, y_held) = holdout_split(X, LABELS, holdout=0.5, seed=1)
    # trained on the held-out part: its loss there is lower than the model's
    held_out_loss = losses_by_hand(other, x_held, y_held).mean()
    assert held_out_loss < losses_by_hand(model, x_held, y_held).mean()


def test_the_sampler_of_host_loops_trains_its_irreducible_model_on_a_holdout_split():
    from importance_sampling.datasets import InMemoryDataset
    from importance_sampling.model_wrappers import OracleWrapper
    from importance_sampling.reweighting import NoReweightingPolicy

    dataset = InMemoryDataset(X, LABELS, categorical=False)
    wrapper = OracleWrapper(sgd_classifier(LEARNING_RATE), NoReweightingPolicy())
    sampler = reducible_loss_sampler(dataset, wrapper, holdout=0.25, epochs=1, batch_size=16,
                                     presample=40, seed=0)
    assert len(sampler.indices) == 48 and len(sampler.irreducible) == 64
    held = np.setdiff1d(np.arange(64), sampler.indices)
    seen = set()
    for _ in range(5):
        batch = sampler.sample(4)
        assert len(batch.idxs) == len(set(batch.idxs.tolist())) == 4
        seen.update(batch.idxs.tolist())
    assert not seen & set(held.tolist())  # never a held-out sample
