"""The examples run end to end on small data faked in the Keras cache.

The fake files have the formats `keras.datasets` reads, but not the published
contents, so the tests accept them despite their hashes and refuse every
download.
"""

import importlib
import io
import math
import os
import pickle
import subprocess
import sys
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from keras.src.backend import config as keras_config
from keras.src.utils import file_utils

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
QUICK = ["--epochs", "1", "--batch-size", "8", "--verbose", "0"]


def _ragged(rng, count, vocabulary):
    """An object array of `count` integer lists of random lengths."""
    sequences = np.empty(count, dtype=object)
    for i in range(count):
        sequences[i] = rng.integers(1, vocabulary, size=rng.integers(5, 30)).tolist()
    return sequences


def fake_mnist(datasets, rng):
    np.savez(
        datasets / "mnist.npz",
        x_train=rng.integers(0, 256, (160, 28, 28), dtype="uint8"),
        y_train=rng.integers(0, 10, 160, dtype="uint8"),
        x_test=rng.integers(0, 256, (80, 28, 28), dtype="uint8"),
        y_test=rng.integers(0, 10, 80, dtype="uint8"),
    )


def fake_cifar10(datasets, rng):
    # Keras reads five training batches and a test batch of 10000 images each.
    images = rng.integers(0, 256, (10000, 3072), dtype="uint8")
    with tarfile.open(datasets / "cifar-10-batches-py-target_archive", "w") as archive:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            batch = {b"data": images, b"labels": rng.integers(0, 10, 10000).tolist()}
            content = pickle.dumps(batch, protocol=4)
            member = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            member.size = len(content)
            archive.addfile(member, io.BytesIO(content))


def fake_imdb(datasets, rng):
    np.savez(
        datasets / "imdb.npz",
        x_train=_ragged(rng, 80, 30000), y_train=rng.integers(0, 2, 80),
        x_test=_ragged(rng, 40, 30000), y_test=rng.integers(0, 2, 40),
    )


def fake_reuters(datasets, rng):
    np.savez(datasets / "reuters.npz", x=_ragged(rng, 150, 2000),
             y=rng.integers(0, 46, 150))


def no_fake(datasets, rng):
    """CanevetICML2016 is generated, not downloaded."""


# (example, writer of its fake data, extra arguments, number of training samples)
CASES = [
    ("mnist_mlp", fake_mnist, ["--data-fraction", "0.5"], 80),
    ("mnist_cnn", fake_mnist, ["--data-fraction", "0.5"], 80),
    ("cifar10_cnn", fake_cifar10, ["--data-fraction", "0.0016"], 80),
    ("imdb_fasttext", fake_imdb, [], 80),
    ("reuters_mlp", fake_reuters, ["--data-fraction", "0.6"], 72),
    ("canevet_icml2016", no_fake, ["--N", "16"], 172),
]
MISSING = [
    ("mnist_mlp", "mnist.npz"),
    ("mnist_cnn", "mnist.npz"),
    ("cifar10_cnn", "cifar-10-batches-py-target_archive"),
    ("imdb_fasttext", "imdb.npz"),
    ("reuters_mlp", "reuters.npz"),
]


def _refuse_download(url, *args, **kwargs):
    raise urllib.error.URLError("no network in tests")


@pytest.fixture
def datasets(tmp_path, monkeypatch):
    """An empty Keras cache in `tmp_path`, trusting its files, never downloading."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))
    monkeypatch.setattr(file_utils, "validate_file", lambda *args, **kwargs: True)
    monkeypatch.setattr(file_utils, "urlretrieve", _refuse_download)
    monkeypatch.syspath_prepend(str(EXAMPLES))
    folder = tmp_path / "datasets"
    folder.mkdir()
    return folder


def _example(name):
    return importlib.import_module(name)


@pytest.mark.parametrize(
    "name, writer, argv, num_train", CASES, ids=[case[0] for case in CASES]
)
def test_example_trains_both_ways_and_plots(datasets, tmp_path, capsys, name,
                                            writer, argv, num_train):
    writer(datasets, np.random.default_rng(0))
    figure = tmp_path / f"{name}.png"

    results = _example(name).main(argv + QUICK + ["--plot", str(figure)])

    methods = ["uniform", "importance"] + (["unbiased"] if name == "canevet_icml2016" else [])
    assert list(results) == methods
    # `model.fit` takes a last, partial batch; importance sampling does not.
    assert results["uniform"].steps == math.ceil(num_train / 8)
    assert all(results[method].steps == num_train // 8 for method in methods[1:])
    for result in results.values():
        assert np.isfinite([result.train_loss, result.test_loss]).all()
        assert 0 <= result.test_accuracy <= 1
        assert [point[0] for point in result.points] == [result.steps]
    output = capsys.readouterr().out
    assert "test acc" in output and "importance" in output
    assert figure.read_bytes().startswith(b"\x89PNG")


def test_uniform_flag_runs_only_model_fit(datasets):
    fake_mnist(datasets, np.random.default_rng(0))
    results = _example("mnist_mlp").main(["--uniform", "--data-fraction", "0.5"] + QUICK)
    assert list(results) == ["uniform"]


def test_default_is_importance_sampling_only(datasets):
    fake_mnist(datasets, np.random.default_rng(0))
    results = _example("mnist_mlp").main(["--data-fraction", "0.5"] + QUICK)
    assert list(results) == ["importance"]


def test_canevet_trains_both_ways_by_default(datasets):
    results = _example("canevet_icml2016").main(["--N", "16"] + QUICK)
    assert list(results) == ["uniform", "importance", "unbiased"]


def test_the_summary_says_when_each_method_reached_uniforms_final_accuracy(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    _common = _example("_common")

    def result(points):
        steps, seconds, _, accuracy = points[-1]
        return _common.Result(0.1, 0.2, accuracy, seconds, steps, points)

    results = {
        "uniform": result([(10, 1.0, 0.5, 0.70), (20, 2.0, 0.4, 0.80)]),
        "importance": result([(10, 1.5, 0.5, 0.85), (20, 3.0, 0.4, 0.90)]),
        "unbiased": result([(10, 1.2, 0.5, 0.60), (20, 2.4, 0.4, 0.79)]),
    }
    lines = _common.summary(results).splitlines()
    assert lines[-4] == "Time to uniform sampling's final test accuracy, 0.8000:"
    assert lines[-3].split() == ["uniform", "2.0", "s", "20", "steps"]
    assert lines[-2].split() == ["importance", "1.5", "s", "10", "steps"]
    assert lines[-1].split() == ["unbiased", "not", "reached"]


def test_bad_data_fraction_is_a_usage_error(datasets, capsys):
    with pytest.raises(SystemExit) as raised:
        _example("canevet_icml2016").main(["--data-fraction", "0"])
    assert raised.value.code == 2
    assert "--data-fraction must be in (0, 1]. Received: 0.0" in capsys.readouterr().err


@pytest.mark.parametrize("name, filename", MISSING, ids=[case[0] for case in MISSING])
def test_missing_data_stops_with_one_sentence(datasets, name, filename):
    with pytest.raises(SystemExit) as raised:
        _example(name).main(QUICK)
    message = str(raised.value.code)
    assert message.startswith(f"Missing data: {filename} is not in {datasets},")
    assert message.count(". ") == 0 and message.endswith(").")


def test_missing_data_message_has_no_traceback(tmp_path):
    # Downloads go through a closed local proxy, so they fail at once.
    env = dict(
        os.environ, KERAS_HOME=str(tmp_path), https_proxy="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9", PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3",
    )
    env.pop("no_proxy", None)
    env.pop("NO_PROXY", None)
    process = subprocess.run(
        [sys.executable, str(EXAMPLES / "mnist_mlp.py"), "--data-fraction", "0.1"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert process.returncode == 1
    assert "Traceback" not in process.stderr
    assert f"Missing data: mnist.npz is not in {tmp_path / 'datasets'}," in process.stderr


@pytest.mark.parametrize("shape, expected", [(None, (28, 28)), ((784,), (784,)),
                                             ((28, 28, 1), (28, 28, 1))])
def test_prepare_images_scales_reshapes_and_one_hots(datasets, capsys, shape, expected):
    common = _example("_common")
    pixels = np.full((3, 28, 28), 255, dtype="uint8")
    splits = ((pixels, np.array([0, 2, 1])), (pixels[:2], np.array([[1], [0]])))

    (x_train, y_train), (x_test, y_test) = common.prepare_images(splits, 3, shape=shape)

    assert x_train.shape == (3,) + expected and x_test.shape == (2,) + expected
    assert x_train.dtype == "float32" and x_train.max() == 1.0
    assert y_train.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert y_test.tolist() == [[0, 1, 0], [1, 0, 0]]
    assert capsys.readouterr().out == "3 train samples, 2 test samples\n"


def test_mnist_subset_runs_an_example_on_its_own_cache(tmp_path):
    """scripts/mnist_subset_cache.py splits the digits by class and runs the example."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 10)
    digits = np.column_stack([rng.integers(0, 256, (100, 784)), labels])
    csv = tmp_path / "digits.csv"
    np.savetxt(csv, digits, fmt="%d", delimiter=",")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "mnist_subset_cache.py"), "--csv", str(csv),
         "--test-per-class", "2", str(EXAMPLES / "mnist_mlp.py"), "--uniform"] + QUICK,
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert process.returncode == 0, process.stderr
    assert "80 train samples, 20 test samples" in process.stdout
    assert "uniform" in process.stdout and "Downloading" not in process.stdout
