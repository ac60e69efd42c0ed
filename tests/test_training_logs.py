"""The training logs estimate the training-set metrics under importance sampling."""

import numpy as np
from conftest import blobs, make_classifier, one_hot

from importance_sampling import signals
from importance_sampling.training import ImportanceTraining

X, LABELS = blobs(512, num_classes=3)
Y = one_hot(LABELS, 3)


def test_logged_accuracy_estimates_the_training_set_accuracy():
    model = make_classifier(2, 3, hidden=4)
    model.fit(X, Y, epochs=2, verbose=0)  # partly trained: skewed losses
    model.optimizer.learning_rate = 0.0   # frozen: the true accuracy stays fixed
    truth = model.evaluate(X, Y, verbose=0)[1]
    correct_by_sample = model.predict(X, verbose=0).argmax(axis=1) == LABELS

    presamples, batches = [], []
    record_presample, record_batch = presamples.append, batches.append
    signals.score.connect(record_presample)
    signals.sample.connect(record_batch)
    try:
        history = ImportanceTraining(model, presample=256).fit(
            X, Y, batch_size=32, epochs=1, steps_per_epoch=200, verbose=0
        )
    finally:
        signals.score.disconnect(record_presample)
        signals.sample.disconnect(record_batch)

    # The unbiased weights 1 / (B p_i) = mean(s) / s_i of the drawn items,
    # and the self-normalised estimate with its delta-method standard error
    # over the 200 * 32 draws.
    weights = np.concatenate([
        presample["scores"].mean() / batch["predicted_scores"]
        for presample, batch in zip(presamples, batches)
    ])
    correct = np.concatenate([correct_by_sample[batch["idxs"]] for batch in batches])
    estimate = np.sum(weights * correct) / np.sum(weights)
    standard_error = np.sqrt(np.sum(weights**2 * (correct - estimate) ** 2)) / np.sum(weights)

    logged = history.history["accuracy"][0]
    assert abs(logged - estimate) < 1e-4
    assert abs(logged - truth) < 4 * standard_error
    # while the plain accuracy of the sampled (hard) items is far lower
    assert correct.mean() < truth - 4 * standard_error
