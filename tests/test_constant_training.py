"""Constant-variance and constant-time importance training: their samplers by
hand, and their `fit`, whose steps change size without retracing at every step."""

import keras
import numpy as np
import pytest
from conftest import FirstColumnScorer, make_classifier, one_hot

from importance_sampling import signals
from importance_sampling.constant import (
    ConstantTimeImportanceTraining,
    ConstantVarianceImportanceTraining,
)
from importance_sampling.datasets import BaseDataset, InMemoryDataset
from importance_sampling.reweighting import BiasedReweightingPolicy
from importance_sampling.samplers import ConstantTimeSampler, ConstantVarianceSampler
from importance_sampling.samplers.constant import (
    bucketed_size,
    constant_time_sizes,
    constant_variance_threshold,
)

# The samplers, with a scorer whose score of a sample is its first feature


def scored_dataset(n=200):
    """Samples scored 1, 2, ..., n; the second feature is the index."""
    x = np.stack([np.arange(1, n + 1), np.arange(n)], axis=1).astype("float32")
    return InMemoryDataset(x, np.arange(n) % 2, categorical=False)


def test_bucketed_sizes():
    assert [bucketed_size(c, 32) for c in (0.2, 1, 8, 9, 14.4, 24, 31, 32, 33)] == \
        [8, 8, 8, 16, 16, 24, 32, 32, 40]
    assert [bucketed_size(c, 32, nearest=True) for c in (1, 11.9, 12, 43, 44, 52)] == \
        [8, 8, 16, 40, 48, 56]  # halves round up
    # a batch size that is not a multiple of 4: sizes ceil(j * 10 / 4)
    assert [bucketed_size(c, 10) for c in (1, 3, 4, 5, 6, 8, 9, 11)] == \
        [3, 3, 5, 5, 8, 8, 10, 13]


def test_the_sizes_of_the_formulas():
    # 1 / (2 / 3 - 0.2)
    assert constant_variance_threshold(2.0, 0.2) == pytest.approx(1 / 0.4666666)
    # t = 96; a = max(6.4, 32 / 4) = 8; B' = 96 - 24 = 72; B = int(32 + 40 * 0.5) = 52;
    # a = int((96 - 52) / 3) = 14
    assert constant_time_sizes(32, 4.0, 2.0, 0.5, 0.2) == (52, 14)
    # a = max(6.4, 12.8) = 12.8; B' = 57.6; B = int(32 + 12.8) = 44; a = int(52 / 3) = 17
    assert constant_time_sizes(32, 2.5, 2.0, 0.5, 0.2) == (44, 17)
    # tau so large that min_a holds: a = 6.4; B' = 76.8; B = int(54.4) = 54; a = 14
    assert constant_time_sizes(32, 100.0, 2.0, 0.5, 0.2) == (54, 14)


def test_constant_variance_sampler_is_uniform_until_tau_exceeds_its_threshold():
    scorer = FirstColumnScorer()
    sampler = ConstantVarianceSampler(scored_dataset(), BiasedReweightingPolicy(1.0), scorer,
                                      seed=0)
    assert sampler.condition.threshold == pytest.approx(1 / (2 / 3 - 0.2))
    peaked = np.eye(32)[0]  # tau = sqrt(32) = 5.657: the average passes 2.143 at 5 updates
    for step in range(5):
        batch = sampler.sample(32)
        assert len(batch.idxs) == 32
        np.testing.assert_array_equal(batch.weights, np.ones((32, 1)))
        sampler.update(batch.idxs, peaked)
    assert scorer.calls == []  # uniform steps score nothing on the host
    tau = np.sqrt(32) * (1 - 0.9**5)
    assert sampler.condition.variance_reduction == pytest.approx(tau)
    assert sampler.backward_samples == 5 * 32

    batch = sampler.sample(32)
    # tau = 2.317: (1 / 2.317 + 0.2) * 32 = 20.21 items, rounded up to 24
    assert len(batch.idxs) == 24 == sampler.step_size
    assert scorer.calls == [(32, 32)]
    # unbiased weights over the 32 scored candidates: mean(s) / s_i
    scores = batch.x[:, 0]
    assert np.all(np.isin(batch.idxs, np.arange(200)))
    np.testing.assert_allclose(batch.x[:, 1], batch.idxs)
    assert batch.weights.shape == (24, 1)
    candidates_mean = batch.weights[0, 0] * scores[0]
    np.testing.assert_allclose(batch.weights[:, 0] * scores, candidates_mean, rtol=1e-5)
    # the condition learned from the 32 candidates' scores, not from the step's
    assert sampler.condition.variance_reduction != pytest.approx(tau)
    learned = sampler.condition.variance_reduction
    sampler.update(batch.idxs, np.ones(24))
    assert sampler.condition.variance_reduction == learned
    assert sampler.backward_samples == 5 * 32 + 24
    assert sampler.scored_samples == 32


def test_constant_time_sampler_scores_more_and_trains_on_fewer():
    scorer = FirstColumnScorer()
    sampler = ConstantTimeSampler(scored_dataset(), BiasedReweightingPolicy(1.0), scorer,
                                  seed=0)
    sampler.condition.set_state({"value": 4.0})
    batch = sampler.sample(32)
    # (B, a) = (52, 14), rounded to the nearest multiples of 8: (56, 16)
    assert len(batch.idxs) == 16
    assert scorer.calls == [(32, 32), (24, 32)]  # 56 candidates, at most 32 a pass
    assert sampler.scored_samples == 56
    assert sampler.condition.variance_reduction != 4.0
    # below the threshold (2.0): a uniform batch of b
    sampler.condition.set_state({"value": 2.0})
    batch = sampler.sample(32)
    assert len(batch.idxs) == 32 and scorer.calls[2:] == []
    np.testing.assert_array_equal(batch.weights, np.ones((32, 1)))
    assert sampler.backward_samples == 16 + 32


@pytest.mark.parametrize("make", [
    lambda: ConstantVarianceSampler(scored_dataset(), None, None, extra_samples=0.7),
    lambda: ConstantVarianceSampler(scored_dataset(), None, None, backward_time=0),
    lambda: ConstantTimeSampler(scored_dataset(), None, None, ratio=1.5),
    lambda: ConstantTimeSampler(scored_dataset(), None, None, min_a=0),
])
def test_sampler_arguments_are_checked(make):
    with pytest.raises(ValueError):
        make()


# Training


def easy_problem(n=512, noise=0.05, seed=0):
    """Two well separated blobs with some labels flipped, and a model trained on them.

    Most samples are easy and a few (the flipped ones) hard, so that the
    variance reduction of their scores is large: importance sampling is
    soon worth it.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    x = (np.stack([labels * 2 - 1, np.zeros(n)], 1) * 4 + rng.normal(size=(n, 2)))
    flipped = rng.random(n) < noise
    labels[flipped] = 1 - labels[flipped]
    x, y = x.astype("float32"), one_hot(labels, 2)
    model = make_classifier(2, 2, learning_rate=0.05)
    model.fit(x, y, batch_size=32, epochs=3, verbose=0)
    return model, x, y


class StepRecorder:
    """The sizes of the batches (`is.sample`) and presamples (`is.score`) of the steps."""

    def __init__(self):
        self.batches, self.presamples = [], []

    def on_sample(self, payload):
        self.batches.append(len(payload["idxs"]))

    def on_score(self, payload):
        self.presamples.append(len(payload["scores"]))

    def __enter__(self):
        signals.sample.connect(self.on_sample)
        signals.score.connect(self.on_score)
        return self

    def __exit__(self, *exc):
        signals.sample.disconnect(self.on_sample)
        signals.score.disconnect(self.on_score)


@pytest.mark.parametrize("training", [ConstantVarianceImportanceTraining,
                                      ConstantTimeImportanceTraining])
def test_steps_change_size_without_a_trace_per_step(training):
    model, x, y = easy_problem()
    trainer = training(model)
    assert trainer.wrapper.score_kind == "gnorm"
    with StepRecorder() as steps:
        history = trainer.fit(x, y, batch_size=32, epochs=4, verbose=0)
    assert len(steps.batches) == 4 * 16 == int(model.optimizer.iterations) - 3 * 16
    sizes = set(steps.batches)
    assert 32 in sizes and min(sizes) < 32 and sizes <= {8, 16, 24, 32}
    assert trainer.trace_counts["train"] <= len(sizes)
    assert trainer.trace_counts["score"] <= 4
    # the backward work actually done
    assert trainer.backward_samples == sum(steps.batches) < 4 * 16 * 32
    assert trainer.scored_samples == sum(steps.presamples) > 0
    assert np.all(np.isfinite(history.history["loss"]))
    # a second fit goes on counting, with the same traces
    traces = trainer.trace_counts["train"]
    with StepRecorder() as more:
        trainer.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert trainer.backward_samples == sum(steps.batches) + sum(more.batches)
    assert trainer.trace_counts["train"] == traces or set(more.batches) - sizes


def test_constant_time_steps_stay_about_the_time_of_a_uniform_step():
    model, x, y = easy_problem()
    trainer = ConstantTimeImportanceTraining(model)
    with StepRecorder() as steps:
        trainer.fit(x, y, batch_size=32, epochs=4, verbose=0)
    assert steps.presamples and all(size > 32 for size in steps.presamples)
    trained = [size for size in steps.batches if size < 32]
    assert len(trained) == len(steps.presamples)
    for scored, size in zip(steps.presamples, trained):
        # forward passes: the scoring and the step's; backward: 2 per item
        assert abs(scored + 3 * size - 3 * 32) <= 3 * 8


def test_training_lowers_the_loss_with_the_loss_as_score():
    x, labels = easy_problem()[1:]
    model = make_classifier(2, 2, learning_rate=0.05)
    start = model.evaluate(x, labels, verbose=0)[0]
    ConstantVarianceImportanceTraining(model, score="loss").fit(
        x, labels, batch_size=32, epochs=3, verbose=0
    )
    assert model.evaluate(x, labels, verbose=0)[0] < 0.7 * start


class IndexedDataset(BaseDataset):
    """A dataset with random access that is not an `InMemoryDataset`."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def _get(self, split, idxs):
        return (self.x[idxs], self.y[idxs]) if split == "train" else (self.x[:0], self.y[:0])

    def _size(self, split):
        return len(self.x) if split == "train" else 0


def test_a_dataset_of_random_access_trains_with_steps_of_any_size():
    model, x, y = easy_problem()
    trainer = ConstantVarianceImportanceTraining(model)
    with StepRecorder() as steps:
        trainer.fit_dataset(IndexedDataset(x, y), batch_size=32, epochs=4, verbose=0)
    assert min(steps.batches) < 32


def test_streams_and_bad_arguments_are_refused():
    model = make_classifier(2, 2)
    trainer = ConstantTimeImportanceTraining(model)
    stream = keras.utils.PyDataset

    class Batches(stream):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return np.zeros((8, 2), "float32"), np.zeros((8, 2), "float32")

    with pytest.raises(NotImplementedError, match="ConstantTimeImportanceTraining cannot"):
        trainer.fit(Batches(), batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="extra_samples"):
        ConstantVarianceImportanceTraining(model, extra_samples=0.7)
    with pytest.raises(ValueError, match="backward_time"):
        ConstantTimeImportanceTraining(model, backward_time=-1)
