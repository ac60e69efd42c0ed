"""Uniform sampling against importance sampling on the CanevetICML2016 toy problem.

Both runs start from the same initial weights; the script prints the test
accuracy and the wall time of each.

    python examples/canevet_icml2016.py
"""

import argparse
import time

import keras

from importance_sampling.datasets import CanevetICML2016
from importance_sampling.training import ImportanceTraining


def create_nn():
    """A small fully connected network."""
    model = keras.Sequential([
        keras.Input((2,)),
        keras.layers.Dense(40, activation="tanh"),
        keras.layers.Dense(40, activation="tanh"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--N", type=int, default=256, help="grid points per side")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    dataset = CanevetICML2016(N=args.N)
    x_train, y_train = dataset.train_data[:]
    x_test, y_test = dataset.test_data[:]
    y_train, y_test = y_train.argmax(axis=1), y_test.argmax(axis=1)

    model = create_nn()
    weights = model.get_weights()
    results = {}

    # Uniform sampling
    model.optimizer.learning_rate = 0.01
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
              validation_data=(x_test, y_test), verbose=2)
    results["uniform"] = (model.evaluate(x_test, y_test, verbose=0)[1],
                          time.perf_counter() - start)

    # Biased importance sampling from the same initial weights
    model = create_nn()
    model.set_weights(weights)
    model.optimizer.learning_rate = 0.01
    start = time.perf_counter()
    ImportanceTraining(model, forward_batch_size=1024).fit(
        x_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
        validation_data=(x_test, y_test), verbose=2,
    )
    results["importance"] = (model.evaluate(x_test, y_test, verbose=0)[1],
                             time.perf_counter() - start)

    for name, (accuracy, seconds) in results.items():
        print(f"{name:>10}: test accuracy {accuracy:.4f}, wall time {seconds:.1f} s")
    return results


if __name__ == "__main__":
    main()
