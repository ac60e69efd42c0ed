"""Train a fastText-style classifier of IMDB reviews with importance sampling.

Keras's `imdb_fasttext` example (unigrams) with `model.fit(` replaced by
`ImportanceTraining(model).fit(`; `--uniform` runs the original.

    python examples/imdb_fasttext.py [--uniform] [--plot imdb.png] [--data-fraction 0.1]
"""

import keras

import _common
from importance_sampling.training import ImportanceTraining

MAX_FEATURES = 20000
MAXLEN = 400
EMBEDDING_DIMS = 50


def create_model():
    """Average the word embeddings of a review, then a logistic regression."""
    model = keras.Sequential([
        keras.Input((MAXLEN,)),
        keras.layers.Embedding(MAX_FEATURES, EMBEDDING_DIMS),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def main(argv=None):
    args = _common.parse_args(_common.make_parser(__doc__, epochs=5, batch_size=32), argv)
    (x_train, y_train), (x_test, y_test) = _common.load_data(
        keras.datasets.imdb, "imdb.npz", args.data_fraction, num_words=MAX_FEATURES
    )
    x_train = keras.utils.pad_sequences(x_train, maxlen=MAXLEN)
    x_test = keras.utils.pad_sequences(x_test, maxlen=MAXLEN)
    print(len(x_train), "train sequences,", len(x_test), "test sequences")

    return _common.run(args, create_model, (x_train, y_train), (x_test, y_test),
                       ImportanceTraining)


if __name__ == "__main__":
    main()
