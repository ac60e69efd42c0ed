"""The train steps are traced in the first epoch only, and kept across `fit`s."""

import keras
import numpy as np
import pytest
from conftest import blobs, make_classifier, one_hot

from importance_sampling import signals
from importance_sampling.training import ApproximateImportanceTraining, ImportanceTraining

TRAINERS = {
    "importance": lambda model: ImportanceTraining(model, presample=48),
    "approximate": lambda model: ApproximateImportanceTraining(model, presample=48),
}


@pytest.mark.parametrize("name", sorted(TRAINERS))
def test_trace_counts_stay_constant_after_the_first_epoch(name):
    x, labels = blobs(n=200, num_classes=3)
    trainer = TRAINERS[name](make_classifier(num_classes=3))
    counts = []
    for _ in range(3):
        trainer.fit(x, one_hot(labels, 3), batch_size=16, epochs=1, verbose=0,
                    validation_data=(x[:40], one_hot(labels[:40], 3)))
        counts.append(trainer.trace_counts)
    assert counts[0]["train"] == 1
    assert counts[1] == counts[0] and counts[2] == counts[0]


def test_importance_training_on_arrays_scores_inside_the_train_step():
    x, labels = blobs(n=200, num_classes=3)
    trainer = ImportanceTraining(make_classifier(num_classes=3), presample=50,
                                 forward_batch_size=16)
    trainer.fit(x, one_hot(labels, 3), batch_size=16, epochs=2, verbose=0)
    assert trainer.trace_counts == {"score": 0, "train": 1}


def test_the_host_path_scores_every_presample_in_one_traced_call():
    x, labels = blobs(n=200, num_classes=3)
    trainer = ImportanceTraining(make_classifier(num_classes=3), presample=50,
                                 forward_batch_size=16)
    presample_sizes = []

    def record(event):
        presample_sizes.append(len(event["scores"]))

    signals.score.connect(record)  # a listener keeps the steps on the host
    try:
        trainer.fit(x, one_hot(labels, 3), batch_size=16, epochs=2, verbose=0)
    finally:
        signals.score.disconnect(record)
    assert trainer.trace_counts == {"score": 1, "train": 1}
    assert presample_sizes == [50] * 24
    assert np.isfinite(trainer.model.evaluate(x, one_hot(labels, 3), verbose=0)[0])


def test_a_model_compiled_with_xla_trains_and_traces_once():
    model = make_classifier(num_classes=3)
    model.compile(keras.optimizers.Adam(0.01), "categorical_crossentropy",
                  metrics=["accuracy"], jit_compile=True)
    x, labels = blobs(n=200, num_classes=3)
    trainer = ImportanceTraining(model, presample=48)
    history = trainer.fit(x, one_hot(labels, 3), batch_size=16, epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
    assert trainer.trace_counts == {"score": 0, "train": 1}
