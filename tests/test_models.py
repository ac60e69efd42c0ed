import numpy as np
import pytest

from importance_sampling import models

# (name, input_shape, output_size, whether to run a forward pass)
CASES = [
    ("small_nn", (2,), 3, True),
    ("small_cnn", (8, 8, 1), 4, True),
    ("cnn", (8, 8, 3), 5, True),
    ("elu_cnn", (32, 32, 3), 10, True),
    ("wide_resnet_16_4", (8, 8, 3), 6, True),
    ("wide_resnet_28_10", (8, 8, 3), 7, False),
]


@pytest.mark.parametrize("name,input_shape,output_size,forward", CASES)
def test_classifiers_output_probabilities(name, input_shape, output_size, forward):
    model = models.get(name)(input_shape, output_size)
    assert model.compiled
    assert model.output_shape == (None, output_size)
    if forward:
        x = np.random.default_rng(0).random((2,) + input_shape).astype("float32")
        y = model.predict_on_batch(x)
        assert y.shape == (2, output_size)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)


def test_lstm_lm_predicts_the_next_word_with_sparse_targets():
    model = models.get("lstm_lm")((5,), 11, embedding_size=4, units=8)
    x = np.array([[0, 0, 3, 4, 11], [1, 2, 3, 4, 5]], dtype="int32")
    assert model.predict_on_batch(x).shape == (2, 11)
    logs = model.train_on_batch(x, np.array([2, 10]), return_dict=True)
    assert np.isfinite(logs["loss"])


def test_small_nn_trains_with_the_given_optimizer():
    model = models.small_nn((2,), 2, optimizer="sgd")
    assert model.optimizer.__class__.__name__ == "SGD"
    x = np.random.default_rng(0).random((8, 2)).astype("float32")
    y = np.eye(2, dtype="float32")[[0, 1] * 4]
    before = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    model.fit(x, y, epochs=20, verbose=0)
    assert model.evaluate(x, y, verbose=0, return_dict=True)["loss"] < before


def test_wide_resnet_rejects_a_bad_depth():
    with pytest.raises(ValueError, match="Received: depth=15"):
        models.wide_resnet((8, 8, 3), 2, depth=15)


def test_get_names_the_unknown_model_and_the_known_ones():
    with pytest.raises(ValueError, match="'resnet9'.*small_nn.*Received: name='resnet9'"):
        models.get("resnet9")
    assert set(models.MODELS) == {
        "small_nn", "small_cnn", "cnn", "elu_cnn", "lstm_lm",
        "wide_resnet_16_4", "wide_resnet_28_10",
    }
