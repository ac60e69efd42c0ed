import os
import pickle

import keras
import numpy as np
import pytest

from importance_sampling.datasets import (
    CIFAR10,
    CIFAR100,
    IMDB,
    MNIST,
    GeneratorDataset,
    InMemoryDataset,
    OntheflyAugmentedImages,
    Reuters,
    ZCAWhitening,
)


@pytest.fixture
def keras_cache(tmp_path, monkeypatch):
    """An empty Keras cache in `tmp_path`; any download attempt fails."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline(fname, origin, **kwargs):
        raise Exception(f"URL fetch failure on {origin}: no network")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    os.makedirs(tmp_path / "datasets")
    return tmp_path / "datasets"


def uint8_images(rng, n, shape):
    return rng.integers(0, 256, size=(n,) + shape, dtype="uint8")


def write_cifar_batch(path, rng, n, label_key, num_classes):
    """A pickled batch in the format of the CIFAR archives."""
    os.makedirs(path.parent, exist_ok=True)
    batch = {
        b"data": uint8_images(rng, n, (3 * 32 * 32,)),
        label_key.encode(): [int(c) for c in rng.integers(0, num_classes, size=n)],
    }
    with open(path, "wb") as f:
        pickle.dump(batch, f)


def ragged(rng, n, max_word):
    sequences = np.empty(n, dtype="object")
    for i in range(n):
        sequences[i] = [int(w) for w in rng.integers(1, max_word, size=rng.integers(2, 9))]
    return sequences


def test_mnist_reads_the_cached_npz_as_normalised_images(keras_cache):
    rng = np.random.default_rng(0)
    x_train = uint8_images(rng, 6, (28, 28))
    x_train[0, 0, 0] = 255
    np.savez(
        keras_cache / "mnist.npz", x_train=x_train, y_train=np.arange(6) % 10,
        x_test=uint8_images(rng, 2, (28, 28)), y_test=np.array([9, 3]),
    )
    dataset = MNIST()
    x, y = dataset.train_data[:]
    assert x.dtype == np.float32 and x.shape == (6, 28, 28, 1)
    assert x.min() >= 0 and x.max() == 1.0
    np.testing.assert_allclose(x[..., 0], x_train / 255.0, rtol=1e-6)
    assert dataset.shape == (28, 28, 1) and dataset.output_size == 10
    np.testing.assert_array_equal(dataset.test_data[:][1].argmax(axis=1), [9, 3])


def test_cifar10_reads_the_five_training_batches_channels_last(keras_cache):
    rng = np.random.default_rng(0)
    folder = keras_cache / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    for i in range(1, 6):
        write_cifar_batch(folder / f"data_batch_{i}", rng, 2, "labels", 10)
    write_cifar_batch(folder / "test_batch", rng, 3, "labels", 10)
    dataset = CIFAR10()
    x, y = dataset.train_data[:]
    assert x.shape == (10, 32, 32, 3) and x.dtype == np.float32
    assert len(dataset.test_data) == 3 and dataset.output_size == 10
    with open(folder / "data_batch_2", "rb") as f:
        second = pickle.load(f)
    expected = second[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0) / 255.0
    np.testing.assert_allclose(x[2], expected, rtol=1e-6)
    assert y[2].argmax() == second[b"labels"][0]


@pytest.mark.parametrize("label_mode,num_classes", [("fine", 100), ("coarse", 20)])
def test_cifar100_uses_the_requested_labels(keras_cache, label_mode, num_classes):
    rng = np.random.default_rng(0)
    folder = keras_cache / "cifar-100-python-target" / "cifar-100-python"
    for name, n in (("train", 4), ("test", 2)):
        os.makedirs(folder, exist_ok=True)
        batch = {
            b"data": uint8_images(rng, n, (3 * 32 * 32,)),
            b"fine_labels": [99, 0, 1, 2][:n],
            b"coarse_labels": [19, 0, 1, 2][:n],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    dataset = CIFAR100(label_mode=label_mode)
    assert dataset.shape == (32, 32, 3)
    assert dataset.output_size == num_classes
    assert dataset.train_data[0][1].argmax() == num_classes - 1


def test_cifar100_rejects_an_unknown_label_mode(keras_cache):
    with pytest.raises(ValueError, match="Received: label_mode='medium'"):
        CIFAR100(label_mode="medium")


def test_imdb_pads_reviews_and_marks_rare_words(keras_cache):
    rng = np.random.default_rng(0)
    x_train = ragged(rng, 5, 30)
    x_train[0] = [5, 25, 7]
    np.savez(
        keras_cache / "imdb.npz", x_train=x_train, y_train=np.array([0, 1, 0, 1, 1]),
        x_test=ragged(rng, 3, 30), y_test=np.array([1, 0, 0]),
    )
    dataset = IMDB(num_words=20, maxlen=6)
    x, y = dataset.train_data[:]
    assert x.shape == (5, 6) and dataset.output_size == 2
    # start index 1, words shifted by 3, index >= num_words -> 2, left padding
    np.testing.assert_array_equal(x[0], [0, 0, 1, 8, 2, 10])
    assert x.max() < 20
    assert len(dataset.test_data) == 3


def test_reuters_bag_of_words_and_the_keras_split(keras_cache):
    rng = np.random.default_rng(0)
    x = ragged(rng, 10, 50)
    y = np.arange(10) % 4
    np.savez(keras_cache / "reuters.npz", x=x, y=y)
    dataset = Reuters(num_words=16, bag_of_words=True, test_split=0.2)
    x_train, y_train = dataset.train_data[:]
    assert x_train.shape == (8, 16) and len(dataset.test_data) == 2
    assert set(np.unique(x_train)) == {0.0, 1.0}
    assert np.all(x_train[:, 1] == 1)  # every wire has the start index
    order = np.arange(10)
    np.random.RandomState(113).shuffle(order)
    np.testing.assert_array_equal(y_train.argmax(axis=1), y[order[:8]])


@pytest.mark.parametrize(
    "loader,name",
    [
        (MNIST, "mnist.npz"),
        (CIFAR10, "cifar-10-batches-py-target"),
        (CIFAR100, "cifar-100-python-target"),
        (IMDB, "imdb.npz"),
        (Reuters, "reuters.npz"),
    ],
)
def test_missing_files_name_the_file_and_the_cache(keras_cache, loader, name):
    with pytest.raises(FileNotFoundError) as error:
        loader()
    message = str(error.value)
    assert str(keras_cache / name) in message
    assert "could not be downloaded" in message and "no network" in message


def images(n=16, side=8, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, side, side, 3)).astype("float32")
    return InMemoryDataset(x, np.arange(n) % 2, x[:4], np.arange(4) % 2)


def test_onthefly_augmentation_flips_training_images_only():
    dataset = images()
    augmented = OntheflyAugmentedImages(dataset, {"horizontal_flip": True}, seed=1)
    original = dataset.train_data[:][0]
    x, y = augmented.train_data[:]
    flipped = np.all(np.isclose(x, original[:, :, ::-1]), axis=(1, 2, 3))
    kept = np.all(np.isclose(x, original), axis=(1, 2, 3))
    assert np.all(flipped | kept) and flipped.any() and kept.any()
    np.testing.assert_array_equal(y, dataset.train_data[:][1])
    np.testing.assert_array_equal(augmented.test_data[:][0], dataset.test_data[:][0])
    assert augmented.train_data[3][0].shape == (8, 8, 3)
    assert len(augmented.train_data) == 16 and augmented.output_size == 2


def test_onthefly_augmentation_shifts_with_nearest_fill():
    x = np.zeros((1, 8, 8, 1), dtype="float32")
    x[0, :, 4:] = 1.0
    dataset = InMemoryDataset(np.repeat(x, 32, axis=0), np.zeros(32, dtype="int64"))
    augmented = OntheflyAugmentedImages(dataset, {"width_shift_range": 0.25}, seed=2)
    idxs, shifted, _ = augmented.train_data.draw(32, np.random.default_rng(0))
    assert len(idxs) == 32
    assert not np.allclose(shifted, dataset.train_data[:][0])
    # a horizontal shift with nearest fill keeps every column constant
    np.testing.assert_allclose(shifted, shifted[:, :1].repeat(8, axis=1), atol=1e-5)
    assert shifted.min() >= 0 and shifted.max() <= 1


def test_onthefly_augmentation_rejects_unknown_parameters_and_non_images():
    with pytest.raises(ValueError, match="rotation_range"):
        OntheflyAugmentedImages(images(), {"rotation_range": 10})
    flat = InMemoryDataset(np.zeros((4, 2)), np.arange(4) % 2)
    with pytest.raises(ValueError, match=r"Received: a dataset of samples of shape \(2,\)"):
        OntheflyAugmentedImages(flat, {})


def test_zca_whitening_decorrelates_the_training_images():
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(12, 12))
    x = (rng.normal(size=(500, 12)) @ mixing + 3).reshape(500, 2, 2, 3).astype("float32")
    y = np.eye(2, dtype="float32")[np.arange(500) % 2]
    whitened = ZCAWhitening(InMemoryDataset(x, y, x[:10], y[:10]))
    x_white, y_white = whitened.train_data[:]
    flat = x_white.reshape(500, -1)
    np.testing.assert_allclose(flat.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(flat.T @ flat / 500, np.eye(12), atol=1e-3)
    np.testing.assert_array_equal(y_white, y)
    np.testing.assert_allclose(whitened.test_data[:][0], x_white[:10], atol=1e-4)
    assert whitened.shape == (2, 2, 3) and whitened.output_size == 2


def test_training_on_an_augmented_dataset_augments_at_every_step(monkeypatch):
    from importance_sampling.training import ImportanceTraining

    dataset = images()
    augmented = OntheflyAugmentedImages(dataset, {"horizontal_flip": True}, seed=1)
    calls = []
    original = augmented._augmented
    monkeypatch.setattr(augmented, "_augmented", lambda x: calls.append(len(x)) or original(x))
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    ImportanceTraining(model, presample=8).fit_dataset(augmented, batch_size=4, epochs=2,
                                                       verbose=0)
    # 4 steps an epoch, each drawing 8 freshly augmented candidates
    assert calls.count(8) == 8


# GeneratorDataset


def looping_batches(x, y, batch_size):
    """The rows of `x, y` in order, `batch_size` at a time, forever."""
    while True:
        for start in range(0, len(x), batch_size):
            yield x[start:start + batch_size], y[start:start + batch_size]


def test_generator_test_data_length_counts_samples():
    x = np.arange(40, dtype="float32")[:, None]
    y = np.zeros((40, 2), dtype="float32")
    dataset = GeneratorDataset(looping_batches(x, y, 8), looping_batches(x, y, 4),
                               test_data_length=10)
    assert len(dataset.test_data) == 10
    evaluation = dataset.evaluation_arguments()
    # 10 samples in batches of the test generator's size, 4
    assert evaluation["steps"] == 3
    passes = evaluation["x"]
    first = [next(passes) for _ in range(evaluation["steps"])]
    assert [len(batch[0]) for batch in first] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in first])[:, 0], np.arange(10))
    # the next evaluation reads the next 10 samples of the stream
    second = np.concatenate([next(passes)[0] for _ in range(evaluation["steps"])])
    np.testing.assert_array_equal(second[:, 0], np.arange(10, 20))


def test_fit_dataset_evaluates_test_data_length_samples_of_a_generator():
    from importance_sampling.training import ImportanceTraining

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 2)).astype("float32")
    y = np.eye(2, dtype="float32")[(x[:, 0] > 0).astype(int)]
    dataset = GeneratorDataset(looping_batches(x, y, 16), looping_batches(x, y, 4),
                               test_data_length=6)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "categorical_crossentropy")
    history = ImportanceTraining(model, presample=16).fit_dataset(
        dataset, steps_per_epoch=2, batch_size=8, epochs=1, verbose=0
    )
    # the first 6 test samples, not 6 batches of them
    expected = model.evaluate(x[:6], y[:6], batch_size=6, verbose=0)
    assert history.history["val_loss"][0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("length", [0, -4, 2.5, True, "10"])
def test_generator_test_data_length_must_be_a_positive_integer(length):
    x, y = np.zeros((8, 1)), np.zeros(8)
    with pytest.raises(ValueError, match="`test_data_length` must be a positive integer"):
        GeneratorDataset(looping_batches(x, y, 4), looping_batches(x, y, 4),
                         test_data_length=length)


def test_generator_test_data_length_is_required_for_a_test_generator():
    x, y = np.zeros((8, 1)), np.zeros(8)
    with pytest.raises(ValueError, match="number of test samples"):
        GeneratorDataset(looping_batches(x, y, 4), looping_batches(x, y, 4))


def test_generator_test_arrays_are_indexable_and_counted():
    x, y = np.arange(6, dtype="float32")[:, None], np.arange(6)
    dataset = GeneratorDataset(looping_batches(x, y, 2), test_data=(x, y))
    assert len(dataset.test_data) == 6
    np.testing.assert_array_equal(dataset.test_data[[1, 3]][0][:, 0], [1, 3])
    assert dataset.evaluation_arguments()["x"] is x
