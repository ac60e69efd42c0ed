"""Sort the dataset descending by loss: the report, and training on its top.

A bag-of-words of unigrams and bigrams and a network with one hidden layer
classify the Reuters newswires by topic (`keras.datasets.reuters`). After
ordinary training, the training set is ranked by loss: the hardest and
easiest newswires and the topics of every loss decile are printed. Then the
same network is trained, from the same saved initial weights, in three
ways: ordinarily (`model.fit`), on the top `--fraction` of the instances
re-ranked every epoch (`SelectiveTraining(strategy="percentile")`) and on
the instances that carry the top `--fraction` of the total loss
(`strategy="mass"`); the summary compares the losses of the instances
trained on, of those left out and of the test set. `--bottom` trains on the
bottom of the ranking instead, `--no-shuffle` keeps the order of the data.

`--dataset digits` runs offline on scikit-learn's digits (pixels instead of
words).

    python examples/loss_ranking.py [--dataset digits] [--fraction 0.3] [--report-plot report.png]
"""

import argparse
import collections
import os
import tempfile
import time

import keras
import numpy as np

import _common
from importance_sampling.ranking import loss_report, per_sample_loss, plot_loss_report
from importance_sampling.selective import SelectiveTraining

MAX_WORDS = 1000
MAX_BIGRAMS = 1000
HIDDEN = 256


def bigram_vocabulary(sequences, size=MAX_BIGRAMS):
    """The `size` most frequent pairs of consecutive words, each with a column."""
    counts = collections.Counter()
    for sequence in sequences:
        counts.update(zip(sequence[:-1], sequence[1:]))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:size]
    return {pair: column for column, (pair, _) in enumerate(ranked)}


def bag_of_ngrams(sequences, bigrams):
    """One row per sequence: the counts of its words, then of its known bigrams."""
    matrix = np.zeros((len(sequences), MAX_WORDS + len(bigrams)), dtype="float32")
    for row, sequence in enumerate(sequences):
        for word in sequence:
            if word < MAX_WORDS:
                matrix[row, word] += 1
        for pair in zip(sequence[:-1], sequence[1:]):
            column = bigrams.get(pair)
            if column is not None:
                matrix[row, MAX_WORDS + column] += 1
    return matrix


def load_reuters(fraction):
    (x_train, y_train), (x_test, y_test) = _common.load_data(
        keras.datasets.reuters, "reuters.npz", fraction, num_words=MAX_WORDS,
        test_split=0.3,
    )
    bigrams = bigram_vocabulary(x_train)
    x_train, x_test = bag_of_ngrams(x_train, bigrams), bag_of_ngrams(x_test, bigrams)
    names = list(keras.datasets.reuters.get_label_names())
    return (x_train, y_train.astype("int64")), (x_test, y_test.astype("int64")), names


def load_digits(fraction):
    """scikit-learn's 8x8 digits, the first 70 % for training, in a fixed order."""
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    x = (digits.data / 16).astype("float32")
    y = digits.target.astype("int64")
    split = int(0.7 * len(x))
    splits = _common.subset(((x[:split], y[:split]), (x[split:], y[split:])), fraction)
    return splits[0], splits[1], [str(d) for d in range(10)]


def make_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("reuters", "digits"), default="reuters",
                        help="default: reuters (downloaded by keras.datasets)")
    parser.add_argument("--fraction", type=float, default=0.3,
                        help="share of the instances (percentile) or of the total "
                             "loss (mass) trained on (default: 0.3)")
    parser.add_argument("--bottom", action="store_true",
                        help="train on the bottom of the ranking instead of the top")
    parser.add_argument("--no-shuffle", action="store_true",
                        help="visit the instances in the order of the data")
    parser.add_argument("--epochs", type=int, default=10, help="default: 10")
    parser.add_argument("--batch-size", type=int, default=32, help="default: 32")
    parser.add_argument("--data-fraction", type=float, default=1.0,
                        help="use only this fraction of the data (default: 1)")
    parser.add_argument("--top", type=int, default=10,
                        help="hardest and easiest instances listed (default: 10)")
    parser.add_argument("--bins", choices=("quantile", "range"), default="quantile",
                        help="deciles of the ranking or tenths of the loss range")
    parser.add_argument("--report-plot", metavar="PNG",
                        help="save the report's figure to PNG (needs matplotlib)")
    parser.add_argument("--seed", type=int, default=0, help="default: 0")
    parser.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2),
                        help="Keras verbosity of training (default: 0)")
    return parser


def create_model(input_dim, num_classes):
    model = keras.Sequential([
        keras.Input((input_dim,)),
        keras.layers.Dense(HIDDEN, activation="relu"),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


class Result(collections.namedtuple("Result", [
        "selected_loss", "left_out_loss", "train_loss", "test_loss", "test_accuracy",
        "steps", "seconds"])):
    """What one strategy achieved; the losses are means of per-sample losses."""


def train(strategy, args, weights_path, train_data, test_data, num_classes):
    """Train from the saved initial weights with one strategy; its `Result` and model."""
    keras.utils.set_random_seed(args.seed)
    model = create_model(train_data[0].shape[1], num_classes)
    model.load_weights(weights_path)
    fit = dict(batch_size=args.batch_size, epochs=args.epochs, verbose=args.verbose,
               validation_data=test_data, shuffle=not args.no_shuffle)
    start = time.perf_counter()
    selected = None
    if strategy == "ordinary":
        model.fit(*train_data, **fit)
    else:
        training = SelectiveTraining(model, strategy=strategy, fraction=args.fraction,
                                     from_top=not args.bottom, seed=args.seed)
        training.fit(*train_data, **fit)
        selected = training.selections[-1]
    seconds = time.perf_counter() - start
    losses = per_sample_loss(model, *train_data)
    left_out = np.zeros(len(losses), dtype=bool)
    if selected is not None:
        left_out[:] = True
        left_out[selected] = False
    test_loss, test_accuracy = model.evaluate(*test_data, verbose=0)
    return Result(
        float(losses[selected].mean()) if selected is not None else float(losses.mean()),
        float(losses[left_out].mean()) if left_out.any() else float("nan"),
        float(losses.mean()), float(test_loss), float(test_accuracy),
        int(model.optimizer.iterations), seconds,
    ), model


def summary(results, args):
    side = "bottom" if args.bottom else "top"
    lines = [f"Training on the {side} {args.fraction:.0%} (percentile: of the instances, "
             "mass: of the total loss), re-ranked every epoch:",
             f"{'':>10} {'trained on':>10} {'left out':>9} {'train':>8} {'test':>8} "
             f"{'test acc':>9} {'steps':>6} {'time':>7}"]
    for name, r in results.items():
        left_out = "-" if np.isnan(r.left_out_loss) else f"{r.left_out_loss:.4f}"
        lines.append(
            f"{name:>10} {r.selected_loss:10.4f} {left_out:>9} {r.train_loss:8.4f} "
            f"{r.test_loss:8.4f} {r.test_accuracy:9.4f} {r.steps:6d} {r.seconds:6.1f}s"
        )
    lines.append("(mean per-sample losses; 'trained on' is the last epoch's selection)")
    return "\n".join(lines)


def main(argv=None):
    parser = make_parser()
    args = parser.parse_args(argv)
    if not 0 < args.fraction <= 1:
        parser.error(f"--fraction must be in (0, 1]. Received: {args.fraction}")
    if not 0 < args.data_fraction <= 1:
        parser.error(f"--data-fraction must be in (0, 1]. Received: {args.data_fraction}")
    loader = load_reuters if args.dataset == "reuters" else load_digits
    train_data, test_data, names = loader(args.data_fraction)
    num_classes = max(len(names), int(max(train_data[1].max(), test_data[1].max())) + 1)
    print(len(train_data[0]), "train samples,", len(test_data[0]), "test samples,",
          train_data[0].shape[1], "features,", num_classes, "classes")

    keras.utils.set_random_seed(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        weights_path = os.path.join(folder, "initial.weights.h5")
        create_model(train_data[0].shape[1], num_classes).save_weights(weights_path)
        results, models = {}, {}
        for strategy in ("ordinary", "percentile", "mass"):
            results[strategy], models[strategy] = train(
                strategy, args, weights_path, train_data, test_data, num_classes
            )
    print(f"\nThe training set ranked by the loss of the ordinarily trained model "
          f"({args.dataset}):")
    report = loss_report(models["ordinary"], *train_data, class_names=names,
                         top=args.top, bins=args.bins)
    if args.report_plot:
        plot_loss_report(report, args.report_plot)
        print(f"Saved the report's figure to {args.report_plot}")
    print()
    print(summary(results, args))
    return results, report


if __name__ == "__main__":
    main()
