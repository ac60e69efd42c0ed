"""Train a simple convnet on MNIST with importance sampling.

Keras's `mnist_cnn` example with `model.fit(` replaced by
`ImportanceTraining(model).fit(`; `--uniform` runs the original.

    python examples/mnist_cnn.py [--uniform] [--plot mnist_cnn.png] [--data-fraction 0.1]
"""

import keras

import _common
from importance_sampling.training import ImportanceTraining

NUM_CLASSES = 10


def create_model():
    """Two convolutions, max pooling, dropout and a dense layer."""
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        keras.layers.Conv2D(64, (3, 3), activation="relu"),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Dropout(0.25),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dropout(0.5),
        keras.layers.Dense(NUM_CLASSES, activation="softmax"),
    ])
    # Adadelta with the learning rate of the original example.
    model.compile(loss="categorical_crossentropy",
                  optimizer=keras.optimizers.Adadelta(learning_rate=1.0),
                  metrics=["accuracy"])
    return model


def main(argv=None):
    args = _common.parse_args(_common.make_parser(__doc__, epochs=12, batch_size=128), argv)
    splits = _common.load_data(keras.datasets.mnist, "mnist.npz", args.data_fraction)
    train, test = _common.prepare_images(splits, NUM_CLASSES, shape=(28, 28, 1))
    return _common.run(args, create_model, train, test, ImportanceTraining)


if __name__ == "__main__":
    main()
