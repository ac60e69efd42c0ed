"""Train a simple deep CNN on the CIFAR10 small images with importance sampling.

Keras's `cifar10_cnn` example with `model.fit(` replaced by
`ImportanceTraining(model).fit(`; `--uniform` runs the original. The random
shifts and horizontal flips of the original's data augmentation are Keras
preprocessing layers at the start of the model, active only in training
steps, so the importance scores are computed on the unaugmented images.

    python examples/cifar10_cnn.py [--uniform] [--plot cifar10_cnn.png] [--data-fraction 0.1]
"""

import keras

import _common
from importance_sampling.training import ImportanceTraining

NUM_CLASSES = 10


def create_model():
    """Four convolutions in two blocks, then a dense layer, with L2 penalties."""
    l2 = keras.regularizers.L2(1e-4)
    model = keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.RandomTranslation(0.1, 0.1),
        keras.layers.RandomFlip("horizontal"),
        keras.layers.Conv2D(32, (3, 3), padding="same", activation="relu",
                            kernel_regularizer=l2),
        keras.layers.Conv2D(32, (3, 3), activation="relu", kernel_regularizer=l2),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Conv2D(64, (3, 3), padding="same", activation="relu",
                            kernel_regularizer=l2),
        keras.layers.Conv2D(64, (3, 3), activation="relu", kernel_regularizer=l2),
        keras.layers.MaxPooling2D(pool_size=(2, 2)),
        keras.layers.Flatten(),
        keras.layers.Dense(512, activation="relu", kernel_regularizer=l2),
        keras.layers.Dense(NUM_CLASSES, activation="softmax", kernel_regularizer=l2),
    ])
    model.compile(loss="categorical_crossentropy",
                  optimizer=keras.optimizers.Adam(learning_rate=0.001),
                  metrics=["accuracy"])
    return model


def main(argv=None):
    args = _common.parse_args(_common.make_parser(__doc__, epochs=200, batch_size=32), argv)
    splits = _common.load_data(
        keras.datasets.cifar10, "cifar-10-batches-py-target_archive", args.data_fraction
    )
    train, test = _common.prepare_images(splits, NUM_CLASSES)
    return _common.run(args, create_model, train, test, ImportanceTraining)


if __name__ == "__main__":
    main()
