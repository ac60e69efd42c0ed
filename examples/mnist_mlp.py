"""Train a simple MLP on MNIST with importance sampling.

Keras's `mnist_mlp` example with `model.fit(` replaced by
`ImportanceTraining(model).fit(`; `--uniform` runs the original.

    python examples/mnist_mlp.py [--uniform] [--plot mnist_mlp.png] [--data-fraction 0.1]
"""

import keras

import _common
from importance_sampling.training import ImportanceTraining

NUM_CLASSES = 10


def create_model():
    """Two hidden layers of 512 units with dropout."""
    model = keras.Sequential([
        keras.Input((784,)),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(NUM_CLASSES, activation="softmax"),
    ])
    model.compile(loss="categorical_crossentropy", optimizer=keras.optimizers.RMSprop(),
                  metrics=["accuracy"])
    return model


def main(argv=None):
    args = _common.parse_args(_common.make_parser(__doc__, epochs=20, batch_size=128), argv)
    splits = _common.load_data(keras.datasets.mnist, "mnist.npz", args.data_fraction)
    train, test = _common.prepare_images(splits, NUM_CLASSES, shape=(784,))
    return _common.run(args, create_model, train, test, ImportanceTraining)


if __name__ == "__main__":
    main()
