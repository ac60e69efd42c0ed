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
    (x_train, y_train), (x_test, y_test) = _common.load_data(
        keras.datasets.mnist, "mnist.npz", args.data_fraction
    )
    x_train = x_train.reshape(-1, 784).astype("float32") / 255
    x_test = x_test.reshape(-1, 784).astype("float32") / 255
    y_train = keras.utils.to_categorical(y_train, NUM_CLASSES)
    y_test = keras.utils.to_categorical(y_test, NUM_CLASSES)
    print(len(x_train), "train samples,", len(x_test), "test samples")

    return _common.run(args, create_model, (x_train, y_train), (x_test, y_test),
                       ImportanceTraining)


if __name__ == "__main__":
    main()
