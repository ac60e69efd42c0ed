"""Uniform sampling against importance sampling on the CanevetICML2016 toy problem.

Uniform `model.fit`, the seed's `ImportanceTraining` (loss scores, k=0.5) and
`UnbiasedImportanceTraining` (the 2018 method) start from the same initial
weights; the script prints the final training loss, test loss and accuracy,
wall time and optimizer steps of each, and the training time and steps each
took to reach uniform sampling's final test accuracy. The data is generated,
nothing is downloaded.

    python examples/canevet_icml2016.py [--uniform] [--plot canevet.png] [--N 64]
"""

import keras

import _common
from importance_sampling.datasets import CanevetICML2016
from importance_sampling.training import ImportanceTraining, UnbiasedImportanceTraining


def create_nn():
    """A small fully connected network."""
    model = keras.Sequential([
        keras.Input((2,)),
        keras.layers.Dense(40, activation="tanh"),
        keras.layers.Dense(40, activation="tanh"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


def main(argv=None):
    parser = _common.make_parser(__doc__, epochs=10, batch_size=64, compare=True)
    parser.add_argument("--N", type=int, default=256,
                        help="grid points per side (default: 256)")
    args = _common.parse_args(parser, argv)

    dataset = CanevetICML2016(N=args.N)
    x_train, y_train = dataset.train_data[:]
    x_test, y_test = dataset.test_data[:]
    train, test = _common.subset(
        ((x_train, y_train.argmax(axis=1)), (x_test, y_test.argmax(axis=1))),
        args.data_fraction,
    )
    return _common.run(
        args, create_nn, train, test,
        {
            "importance": lambda model: ImportanceTraining(model, forward_batch_size=1024),
            "unbiased": UnbiasedImportanceTraining,
        },
    )


if __name__ == "__main__":
    main()
