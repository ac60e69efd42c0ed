"""Code shared by the examples: command line, data, timing, summary and plot.

An example loads its data with `load_data()` (images then go through
`prepare_images()`), defines a function that builds
its compiled model and hands both to `run()`, which trains the model
uniformly (`model.fit`), with importance sampling, or both from the same
initial weights, then prints a summary and optionally plots the curves.
"""

import argparse
import json
import os
import sys
import time
from typing import NamedTuple

import keras


def make_parser(doc, epochs, batch_size, compare=False):
    """The command line every example understands.

    Args:
        doc: The example's docstring; its first line describes the command.
        epochs: Default number of epochs.
        batch_size: Default batch size.
        compare: When `True`, train both ways unless `--uniform` is given.
            Defaults to `False` (importance sampling only).

    Returns:
        An `argparse.ArgumentParser`, to which an example may add options.
    """
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--uniform", action="store_true",
                        help="train with plain model.fit (uniform sampling) only")
    parser.add_argument("--plot", metavar="PNG",
                        help="train both uniformly and with importance sampling "
                             "from the same initial weights and save their "
                             "curves to PNG (needs matplotlib)")
    parser.add_argument("--data-fraction", type=float, default=1.0,
                        help="use only this fraction of the training and test "
                             "data, for a quick run (default: 1)")
    parser.add_argument("--epochs", type=int, default=epochs,
                        help=f"default: {epochs}")
    parser.add_argument("--batch-size", type=int, default=batch_size,
                        help=f"default: {batch_size}")
    parser.add_argument("--seed", type=int, default=0, help="default: 0")
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2),
                        help="Keras verbosity of training (default: 2)")
    parser.add_argument("--save-results", metavar="JSON",
                        help="also write the results, with the curves, to JSON")
    parser.set_defaults(compare=compare)
    return parser


def parse_args(parser, argv=None):
    """Parse `argv` and add `args.methods`, the trainings to run in order."""
    args = parser.parse_args(argv)
    if not 0 < args.data_fraction <= 1:
        parser.error(f"--data-fraction must be in (0, 1]. Received: {args.data_fraction}")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install 'keras-importance-sampling[examples]'")
        args.methods = ("uniform", "importance")
    elif args.uniform:
        args.methods = ("uniform",)
    else:
        args.methods = ("uniform", "importance") if args.compare else ("importance",)
    return args


def keras_cache():
    """The folder where `keras.datasets` looks for its files."""
    home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(home, "datasets")


def subset(splits, fraction):
    """Keep the first `fraction` (at least one sample) of every array in `splits`."""
    return tuple(
        tuple(array[:max(1, int(len(array) * fraction))] for array in split)
        for split in splits
    )


def load_data(dataset, filename, fraction=1.0, **kwargs):
    """`dataset.load_data(**kwargs)`, reduced to `fraction` of the samples.

    When `filename` is not in the Keras cache and cannot be downloaded, the
    program stops with a one-sentence message instead of a traceback.

    Args:
        dataset: A `keras.datasets` module, such as `keras.datasets.mnist`.
        filename: The file that `dataset` looks for in the Keras cache.
        fraction: The fraction of the training and test samples to keep.
        **kwargs: Passed to `dataset.load_data`.

    Returns:
        `((x_train, y_train), (x_test, y_test))`.
    """
    cache = keras_cache()
    cached = os.path.exists(os.path.join(cache, filename))
    try:
        splits = dataset.load_data(**kwargs)
    except Exception as error:
        if cached:
            raise
        sys.exit(
            f"Missing data: {filename} is not in {cache}, where keras.datasets "
            f"looks for it, and downloading it failed ({error})."
        )
    return subset(splits, fraction)


def prepare_images(splits, num_classes, shape=None):
    """Scale the pixels to [0, 1], reshape the images and one-hot the labels.

    Also prints the number of training and test samples, as Keras's image
    examples do.

    Args:
        splits: `((x_train, y_train), (x_test, y_test))` with `uint8` pixels
            and integer labels, as `load_data` returns them.
        num_classes: The number of classes of the one-hot labels.
        shape: The shape of one image for the model, such as `(784,)` to
            flatten 28x28 images or `(28, 28, 1)` to add a channel axis.
            Defaults to `None` (keep the shape of the data).

    Returns:
        `((x_train, y_train), (x_test, y_test))`, the images as `float32`.
    """
    prepared = []
    for x, y in splits:
        x = x.astype("float32") / 255
        if shape is not None:
            x = x.reshape((len(x),) + tuple(shape))
        prepared.append((x, keras.utils.to_categorical(y, num_classes)))
    (x_train, _), (x_test, _) = prepared
    print(len(x_train), "train samples,", len(x_test), "test samples")
    return tuple(prepared)


class Recorder(keras.callbacks.Callback):
    """Record the curve of a training, one point at the end of every epoch.

    `points` holds `(optimizer_steps, seconds, train_loss, test_accuracy)`,
    with the seconds of training counted from its start, the evaluations on
    the test data left out.
    """

    def on_train_begin(self, logs=None):
        self.points = []
        self._start = time.perf_counter()
        self._evaluating = 0.0

    def on_test_begin(self, logs=None):
        self._test_start = time.perf_counter()

    def on_test_end(self, logs=None):
        self._evaluating += time.perf_counter() - self._test_start

    def on_epoch_end(self, epoch, logs=None):
        self.points.append((
            int(self.model.optimizer.iterations),
            time.perf_counter() - self._start - self._evaluating,
            float(logs["loss"]),
            float(logs["val_accuracy"]),
        ))


class Result(NamedTuple):
    """What one training achieved."""

    train_loss: float
    test_loss: float
    test_accuracy: float
    seconds: float
    steps: int
    points: list


def run(args, create_model, train, test, importance_training, **fit_kwargs):
    """Train with every method of `args.methods`, print a summary and plot.

    Every training starts from the same seed and the same initial weights.

    Args:
        args: Parsed by `parse_args`.
        create_model: A function returning a compiled model with an
            `accuracy` metric.
        train: `(x_train, y_train)`.
        test: `(x_test, y_test)`, evaluated after every epoch.
        importance_training: A function wrapping a model for importance
            sampling, such as `ImportanceTraining`, or a dict of such
            functions by name, to train with each in turn.
        **fit_kwargs: More arguments of `fit`.

    Returns:
        A dict mapping `"uniform"` and the importance methods' names
        (`"importance"` for a single function) to a `Result`.
    """
    if not isinstance(importance_training, dict):
        importance_training = {"importance": importance_training}
    methods = []
    for method in args.methods:
        methods.extend(importance_training if method == "importance" else [method])
    results = {}
    weights = None
    for method in methods:
        keras.utils.set_random_seed(args.seed)
        model = create_model()
        if weights is None:
            weights = model.get_weights()
        model.set_weights(weights)
        trainer = model if method == "uniform" else importance_training[method](model)
        recorder = Recorder()
        start = time.perf_counter()
        history = trainer.fit(
            *train, batch_size=args.batch_size, epochs=args.epochs,
            verbose=args.verbose, validation_data=test, callbacks=[recorder],
            **fit_kwargs,
        )
        seconds = time.perf_counter() - start
        test_loss, test_accuracy = model.evaluate(*test, verbose=0)[:2]
        results[method] = Result(
            history.history["loss"][-1], test_loss, test_accuracy, seconds,
            int(model.optimizer.iterations), recorder.points,
        )
    print(summary(results))
    if args.save_results:
        with open(args.save_results, "w") as file:
            json.dump({method: r._asdict() for method, r in results.items()}, file, indent=1)
    if args.plot:
        plot(results, args.plot)
        print(f"Saved the curves to {args.plot}")
    return results


def time_to_accuracy(result, target):
    """`(steps, seconds)` of the first epoch that reached `target`, or `None`."""
    for steps, seconds, _, accuracy in result.points:
        if accuracy >= target:
            return steps, seconds
    return None


def summary(results):
    """A table of the results, one line per method.

    With a uniform run, it also says when each method first reached the
    uniform run's final test accuracy (checked at the end of every epoch,
    with the training time of the epochs so far).
    """
    lines = [f"{'':>10} {'train loss':>10} {'test loss':>10} {'test acc':>9} "
             f"{'wall time':>10} {'steps':>7}"]
    for method, r in results.items():
        lines.append(f"{method:>10} {r.train_loss:10.4f} {r.test_loss:10.4f} "
                     f"{r.test_accuracy:9.4f} {r.seconds:8.1f} s {r.steps:7d}")
    if "uniform" in results and results["uniform"].points:
        target = results["uniform"].points[-1][3]
        lines.append(f"Time to uniform sampling's final test accuracy, {target:.4f}:")
        for method, r in results.items():
            reached = time_to_accuracy(r, target)
            lines.append(f"{method:>10} " + (
                "not reached" if reached is None
                else f"{reached[1]:8.1f} s {reached[0]:7d} steps"
            ))
    return "\n".join(lines)


def plot(results, path):
    """Save training loss and test accuracy against steps and seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(9, 6), sharey="row")
    for method, result in results.items():
        steps, seconds, loss, accuracy = zip(*result.points)
        for column, x in enumerate((steps, seconds)):
            axes[0, column].plot(x, loss, marker=".", label=method)
            axes[1, column].plot(x, accuracy, marker=".", label=method)
    for column, xlabel in enumerate(("optimizer steps", "wall-clock seconds")):
        axes[0, column].set_ylabel("training loss")
        axes[1, column].set_ylabel("test accuracy")
        axes[1, column].set_xlabel(xlabel)
    axes[0, 0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
