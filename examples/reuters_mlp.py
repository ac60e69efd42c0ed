"""Train an MLP on the Reuters newswire topics with importance sampling.

Keras's `reuters_mlp` example with `model.fit(` replaced by
`ImportanceTraining(model, k=1.0).fit(` (unbiased importance sampling);
`--uniform` runs the original. Keras 3 has no `Tokenizer`, so the binary
bag-of-words matrix is built with NumPy.

    python examples/reuters_mlp.py [--uniform] [--plot reuters.png] [--data-fraction 0.1]
"""

import keras
import numpy as np

import _common
from importance_sampling.training import ImportanceTraining

MAX_WORDS = 1000


def bag_of_words(sequences):
    """One row per sequence with a 1 for every word index it contains."""
    matrix = np.zeros((len(sequences), MAX_WORDS), dtype="float32")
    for row, sequence in enumerate(sequences):
        matrix[row, sequence] = 1
    return matrix


def main(argv=None):
    args = _common.parse_args(_common.make_parser(__doc__, epochs=5, batch_size=32), argv)
    (x_train, y_train), (x_test, y_test) = _common.load_data(
        keras.datasets.reuters, "reuters.npz", args.data_fraction,
        num_words=MAX_WORDS, test_split=0.2,
    )
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    x_train, x_test = bag_of_words(x_train), bag_of_words(x_test)
    y_train = keras.utils.to_categorical(y_train, num_classes)
    y_test = keras.utils.to_categorical(y_test, num_classes)
    print(len(x_train), "train samples,", len(x_test), "test samples,",
          num_classes, "classes")

    def create_model():
        model = keras.Sequential([
            keras.Input((MAX_WORDS,)),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(num_classes, activation="softmax"),
        ])
        model.compile(loss="categorical_crossentropy", optimizer="adam",
                      metrics=["accuracy"])
        return model

    return _common.run(args, create_model, (x_train, y_train), (x_test, y_test),
                       lambda model: ImportanceTraining(model, k=1.0))


if __name__ == "__main__":
    main()
