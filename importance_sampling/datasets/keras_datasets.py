"""The datasets of `keras.datasets` as in-memory datasets.

The files are the ones `keras.datasets` downloads, read from the Keras cache
(`$KERAS_HOME/datasets`, by default `~/.keras/datasets`). A file missing from
the cache is downloaded with `keras.utils.get_file`; when that fails, a
`FileNotFoundError` says which file is missing and where it is looked for.
A file found in the cache is used as it is, without checking its hash.
"""

import os
from typing import NamedTuple

import keras
import numpy as np

# Keras' own readers of its dataset files: the CIFAR pickles and the `.npz`
# files of ragged sequences, both with a restricted unpickler.
from importance_sampling.keras_internals import load_batch, load_npz

from importance_sampling.datasets.in_memory import InMemoryDataset


class KerasFile(NamedTuple):
    """A file of `keras.datasets`: its cache name, its origin and its hash.

    `extract` marks an archive that Keras unpacks into the folder `name`.
    """

    name: str
    origin: str
    file_hash: str
    extract: bool = False


_GCS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_TORONTO = "https://www.cs.toronto.edu/~kriz/"
MNIST_FILE = KerasFile(
    "mnist.npz", _GCS + "mnist.npz",
    "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
)
CIFAR10_FILE = KerasFile(
    "cifar-10-batches-py-target", _TORONTO + "cifar-10-python.tar.gz",
    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce", extract=True,
)
CIFAR100_FILE = KerasFile(
    "cifar-100-python-target", _TORONTO + "cifar-100-python.tar.gz",
    "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7", extract=True,
)
IMDB_FILE = KerasFile(
    "imdb.npz", _GCS + "imdb.npz",
    "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f",
)
REUTERS_FILE = KerasFile(
    "reuters.npz", _GCS + "reuters.npz",
    "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916",
)


def keras_home():
    """The Keras folder: `$KERAS_HOME`, by default `~/.keras`."""
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def fetch(file):
    """The local path of a `keras.datasets` file, downloading it if needed.

    Args:
        file: A `KerasFile`.

    Returns:
        The path of the file, or of the folder of an extracted archive.

    Raises:
        FileNotFoundError: when the file is not cached and cannot be
            downloaded.
    """
    path = os.path.join(keras_home(), "datasets", file.name)
    if os.path.exists(path):
        return path
    try:
        return keras.utils.get_file(
            file.name, file.origin, file_hash=file.file_hash,
            extract=file.extract, cache_dir=keras_home(),
        )
    except Exception as error:  # get_file raises a bare Exception offline
        raise FileNotFoundError(
            f"The dataset file {path} is missing: it is not in the Keras "
            f"cache and could not be downloaded from {file.origin} ({error}). "
            f"Download it there by hand, or set KERAS_HOME to the folder whose "
            f"datasets/ subfolder holds {file.name!r}."
        ) from None


def _images(x):
    """uint8 images as float32 in [0, 1], channels last, with a channel axis."""
    x = np.asarray(x, dtype="float32") / 255.0
    return x[..., None] if x.ndim == 3 else x


def _cifar_batch(folder, name, label_key="labels"):
    """Images (channels last) and labels of one pickled CIFAR batch."""
    x, y = load_batch(os.path.join(folder, name), label_key=label_key)
    return x.transpose(0, 2, 3, 1), np.asarray(y, dtype="int64")


class MNIST(InMemoryDataset):
    """The MNIST digits: 28x28x1 float32 images in [0, 1], 10 classes.

    Example:

    >>> dataset = MNIST()  # doctest: +SKIP
    >>> dataset.shape, dataset.output_size  # doctest: +SKIP
    ((28, 28, 1), 10)
    """

    def __init__(self):
        with np.load(fetch(MNIST_FILE), allow_pickle=False) as data:
            super().__init__(
                _images(data["x_train"]), data["y_train"].astype("int64"),
                _images(data["x_test"]), data["y_test"].astype("int64"),
            )


class CIFAR10(InMemoryDataset):
    """CIFAR-10: 32x32x3 float32 images in [0, 1], 10 classes."""

    def __init__(self):
        folder = os.path.join(fetch(CIFAR10_FILE), "cifar-10-batches-py")
        batches = [_cifar_batch(folder, f"data_batch_{i}") for i in range(1, 6)]
        x_test, y_test = _cifar_batch(folder, "test_batch")
        super().__init__(
            _images(np.concatenate([x for x, _ in batches])),
            np.concatenate([y for _, y in batches]),
            _images(x_test), y_test,
        )


class CIFAR100(InMemoryDataset):
    """CIFAR-100: 32x32x3 float32 images in [0, 1], 100 or 20 classes.

    Args:
        label_mode: `"fine"` (100 classes) or `"coarse"` (20 super-classes).
            Defaults to `"fine"`.

    Raises:
        ValueError: for another `label_mode`.
    """

    def __init__(self, label_mode="fine"):
        if label_mode not in ("fine", "coarse"):
            raise ValueError(
                "`label_mode` must be 'fine' or 'coarse'. "
                f"Received: label_mode={label_mode!r}"
            )
        folder = os.path.join(fetch(CIFAR100_FILE), "cifar-100-python")
        key = f"{label_mode}_labels"
        x_train, y_train = _cifar_batch(folder, "train", key)
        x_test, y_test = _cifar_batch(folder, "test", key)
        super().__init__(_images(x_train), y_train, _images(x_test), y_test)


def encode_words(sequences, num_words, maxlen, bag_of_words):
    """Word indices as `keras.datasets.imdb` numbers them, padded or counted.

    Every sequence gets the start index 1; word `w` becomes `w + 3`, and
    indices from `num_words` on become the out-of-vocabulary index 2.

    Args:
        sequences: A list of lists of word ranks (1 the most frequent).
        num_words: Size of the vocabulary, `None` for all words.
        maxlen: Length of the padded sequences (the end of longer ones is
            kept), `None` for the longest.
        bag_of_words: When `True`, return a float32 matrix
            `(len(sequences), num_words)` of 0/1 word presence instead.

    Returns:
        An int32 array `(len(sequences), maxlen)` or the bag-of-words matrix.
    """
    sequences = [np.concatenate([[1], np.asarray(s, dtype="int64") + 3]) for s in sequences]
    if num_words is None:
        num_words = int(max(s.max() for s in sequences)) + 1
    sequences = [np.where(s < num_words, s, 2) for s in sequences]
    if not bag_of_words:
        return keras.utils.pad_sequences(sequences, maxlen=maxlen)
    matrix = np.zeros((len(sequences), num_words), dtype="float32")
    for row, sequence in zip(matrix, sequences):
        row[sequence] = 1.0
    return matrix


class IMDB(InMemoryDataset):
    """IMDB movie reviews as word indices, labelled positive (1) or negative (0).

    Args:
        num_words: Keep the `num_words - 3` most frequent words; the others
            become the out-of-vocabulary index 2. Defaults to `20000`.
        maxlen: Length of the padded reviews. Defaults to `400`.
        bag_of_words: Represent a review by the 0/1 presence of every word
            (`num_words` floats) instead. Defaults to `False`.
    """

    def __init__(self, num_words=20000, maxlen=400, bag_of_words=False):
        data = load_npz(fetch(IMDB_FILE))
        super().__init__(
            encode_words(data["x_train"], num_words, maxlen, bag_of_words),
            np.asarray(data["y_train"], dtype="int64"),
            encode_words(data["x_test"], num_words, maxlen, bag_of_words),
            np.asarray(data["y_test"], dtype="int64"),
        )


class Reuters(InMemoryDataset):
    """Reuters newswires as word indices, labelled by one of 46 topics.

    The split is the one of `keras.datasets.reuters.load_data`: the wires
    are shuffled with `seed` and the last `test_split` of them are the test
    set.

    Args:
        num_words: Keep the `num_words - 3` most frequent words; the others
            become the out-of-vocabulary index 2. Defaults to `10000`.
        maxlen: Length of the padded wires. Defaults to `200`.
        bag_of_words: Represent a wire by the 0/1 presence of every word
            (`num_words` floats) instead. Defaults to `False`.
        test_split: Fraction of the wires used for testing. Defaults to
            `0.2`.
        seed: Seed of the shuffle. Defaults to `113`, as in Keras.
    """

    def __init__(self, num_words=10000, maxlen=200, bag_of_words=False,
                 test_split=0.2, seed=113):
        data = load_npz(fetch(REUTERS_FILE))
        x, y = data["x"], np.asarray(data["y"], dtype="int64")
        order = np.arange(len(x))
        np.random.RandomState(seed).shuffle(order)
        x = encode_words(x[order], num_words, maxlen, bag_of_words)
        split = int(len(x) * (1 - test_split))
        y = y[order]
        super().__init__(x[:split], y[:split], x[split:], y[split:])
