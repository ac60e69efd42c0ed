"""The experiment command: train a zoo model with a sampler, log to text files.

`importance-sampling MODEL WRAPPER SAMPLER REWEIGHTING DATASET OUTPUT_DIR`
builds the pieces by name, runs `--train_for` steps of
sample -> weighted step -> sampler update, evaluates every
`--validate_every` steps and writes one line per event into text files of
`OUTPUT_DIR` (see `LOG_FILES`).
"""

import argparse
import os
import time

import keras
import numpy as np

from importance_sampling import models
from importance_sampling.datasets import (
    CIFAR10,
    CIFAR100,
    MNIST,
    CanevetICML2016,
    OntheflyAugmentedImages,
)
from importance_sampling.model_wrappers import OracleWrapper
from importance_sampling.reweighting import (
    AdjustedBiasedReweightingPolicy,
    BiasedReweightingPolicy,
    CorrectingReweightingPolicy,
    NoReweightingPolicy,
)
from importance_sampling.samplers import (
    AdaptiveAdditiveSmoothingSampler,
    AdditiveSmoothingSampler,
    ConditionalStartSampler,
    ConstantTimeSampler,
    ConstantVarianceSampler,
    ExpCondition,
    HistorySampler,
    LSTMSampler,
    ModelSampler,
    OnlineBatchSelectionSampler,
    PerClassGaussian,
    PowerSmoothingSampler,
    SCSGSampler,
    TotalVariationCondition,
    UniformSampler,
    VarianceReductionCondition,
    WarmupCondition,
)
from importance_sampling.infobatch import InfoBatchSampler
from importance_sampling.ordered_sgd import OrderedSGDWrapper
from importance_sampling.rho_loss import reducible_loss_sampler
from importance_sampling.selective_backprop import SelectiveBackpropSampler
from importance_sampling.svrg import SVRGWrapper

# name: (type, default, meaning). `None` defaults leave the choice to the part.
HYPERPARAMETERS = {
    "sb_beta": (float, 1.0, "selectivity of the selective-backprop sampler (keeps ~1/(1+beta))"),
    "sb_history": (int, 1024, "recent losses of the selective-backprop percentiles"),
    "sb_staleness": (int, 0, "passes a selective-backprop loss is reused without a forward pass"),
    "rho_holdout": (float, 0.5, "share of the training set that trains the rho-loss irreducible model"),
    "rho_epochs": (int, 1, "epochs of training of the rho-loss irreducible model"),
    "ib_prune_ratio": (float, 0.5, "share of the well-learned samples an infobatch pass drops"),
    "ib_delta": (float, 0.875, "share of the steps during which the infobatch passes prune"),
    "osgd_q": (float, 0.5, "share of each batch whose largest losses an ordered-sgd step averages"),
    "batch_size": (int, 128, "samples per optimizer step"),
    "lr": (float, 1e-3, "initial learning rate"),
    "lr_reductions": (list, [], "steps (ints) after which the learning rate is divided by 10"),
    "opt": (str, "adam", "optimizer: adam, sgd or rmsprop"),
    "momentum": (float, 0.0, "momentum of sgd"),
    "clipnorm": (float, None, "clip every gradient to this norm"),
    "k": (float, 0.5, "bias exponent of the predicted/adjusted/correcting reweighting"),
    "presample": (int, 1024, "candidates scored per step (model, lstm, pcg samplers)"),
    "forward_batch_size": (int, 128, "batch size of the scoring forward passes"),
    "smooth": (float, None, "smoothing constant (1.0) or power (0.5) of the smooth- samplers"),
    "alpha": (float, 0.9, "momentum of the pcg sampler"),
    "warmup": (int, 100, "uniform steps before the lstm and warmup- samplers start"),
    "exp_th": (float, 2.0, "rate threshold of the exp- samplers"),
    "tv_th": (float, 0.5, "total variation threshold of the tv- samplers"),
    "vr_th": (float, 1.2, "variance reduction threshold of the vr- samplers"),
    "backward_time": (float, 2.0,
                      "time of a backward pass in forward passes (constant- samplers)"),
    "extra_samples": (float, 0.2, "share of b trained on beyond b / tau (constant-variance)"),
    "tau_th": (float, 2.0, "variance reduction threshold of the constant-time sampler"),
    "ratio": (float, 0.5, "where the constant-time presample lies between b and its most"),
    "min_a": (float, 0.2, "fewest items a constant-time step trains on, a share of b"),
    "scsg_B": (float, 0.0, "samples of each mean gradient of the scsg sampler (0: all)"),
    "scsg_B_over_b": (int, 1000, "steps between two mean gradients of the scsg sampler"),
    "scsg_B_rate": (float, 1.0, "factor of scsg_B after each mean gradient"),
    "history_recompute": (int, 600, "steps between re-scorings of the history sampler"),
    "steps_per_epoch": (int, 300, "epoch length of the obs sampler"),
    "obs_recompute": (int, 2, "epochs between re-scorings of the obs sampler"),
    "obs_se0": (float, 100.0, "selection pressure of the obs sampler at the start"),
    "obs_seend": (float, 100.0, "selection pressure of the obs sampler at the end"),
    "obs_epochs": (int, 1, "epochs over which the obs selection pressure moves"),
    "canevet_n": (int, 1024, "grid side of canevet-icml2016 (n * n points)"),
    "seed": (int, 0, "seed of every random generator"),
}

_TYPE_CODES = {"i": int, "f": float, "s": str, "I": int, "F": float, "S": str}
# The type codes each kind of hyperparameter accepts (lists hold numbers).
_ACCEPTED_CODES = {int: "i", float: "if", str: "s", list: "IF"}

LOG_FILES = {
    "train.txt": "the step, its loss and metrics (sorted by name, under a header "
                 "line) of every training step",
    "val_eval.txt": "the same for every validation on the test set",
    "train_eval.txt": "the same on a training subset as large as the test set "
                      "(--save_train_scores)",
    "val_scores.txt": "STEP SCORE... the per-sample scores of every validation "
                      "(--save_scores)",
    "train_scores.txt": "the same for the training subset (--save_scores and "
                        "--save_train_scores)",
    "predictions.txt": "STEP INDEX OBSERVED PREDICTED, one line per sampled item "
                       "with a predicted score (--save_predictions)",
    "clock.txt": "STEP SECONDS, the wall-clock time after every step",
    "lr.txt": "STEP LR at the start and at every learning rate change",
    "model.keras": "the trained model; model.STEP.keras every --snapshot_period "
                   "steps (--save_model)",
}


def parse_hyperparams(text):
    """Parse `name=<type><value>;...` into a dict of typed values.

    Types: `i` int, `f` float, `s` string; `I`, `F`, `S` comma-separated
    lists of them. Names are those of `HYPERPARAMETERS`; missing names get
    their default.

    Args:
        text: The string, e.g. `"batch_size=i128;lr=f0.003;lr_reductions=I10000"`.

    Returns:
        A dict with every name of `HYPERPARAMETERS`.

    Raises:
        ValueError: naming the entry that does not parse, has an unknown
            name or a type other than the hyperparameter's.
    """
    values = {name: default for name, (_, default, _) in HYPERPARAMETERS.items()}
    for entry in filter(None, (part.strip() for part in text.split(";"))):
        name, _, value = entry.partition("=")
        if name not in HYPERPARAMETERS:
            raise ValueError(
                f"Unknown hyperparameter {name!r} in entry {entry!r}. Expected "
                f"one of {sorted(HYPERPARAMETERS)}. Received: {text!r}"
            )
        code, value = value[:1], value[1:]
        kind = HYPERPARAMETERS[name][0]
        try:
            convert = _TYPE_CODES[code]
            parsed = [convert(v) for v in value.split(",")] if code.isupper() else convert(value)
        except (KeyError, ValueError):
            raise ValueError(
                f"Hyperparameter entry {entry!r} does not parse: write name=<type>"
                "<value> with type i (int), f (float), s (string) or I, F, S "
                f"(comma-separated lists). Received: {text!r}"
            ) from None
        if code not in _ACCEPTED_CODES[kind]:
            raise ValueError(
                f"Hyperparameter entry {entry!r} has the wrong type: {name} is "
                f"a {kind.__name__}. Received: {text!r}"
            )
        values[name] = float(parsed) if kind is float else parsed
    return values


def _lookup(table, name, what):
    if name not in table:
        raise ValueError(
            f"Unknown {what} {name!r}. Expected one of {sorted(table)}. "
            f"Received: {what}={name!r}"
        )
    return table[name]


OPTIMIZERS = {
    "adam": lambda hp: keras.optimizers.Adam(hp["lr"], clipnorm=hp["clipnorm"]),
    "rmsprop": lambda hp: keras.optimizers.RMSprop(hp["lr"], clipnorm=hp["clipnorm"]),
    "sgd": lambda hp: keras.optimizers.SGD(
        hp["lr"], momentum=hp["momentum"], clipnorm=hp["clipnorm"]
    ),
}


def _augmented_cifar10(hp):
    params = {"width_shift_range": 0.1, "height_shift_range": 0.1, "horizontal_flip": True}
    return OntheflyAugmentedImages(CIFAR10(), params, seed=hp["seed"])


DATASETS = {
    "canevet-icml2016": lambda hp: CanevetICML2016(N=hp["canevet_n"], seed=hp["seed"]),
    "mnist": lambda hp: MNIST(),
    "cifar10": lambda hp: CIFAR10(),
    "cifar100": lambda hp: CIFAR100(),
    "cifar10-augmented": _augmented_cifar10,
}

WRAPPERS = {f"oracle-{score}": score for score in ("loss", "gnorm", "acc")}
WRAPPERS["svrg"] = "svrg"  # variance-reduced steps; goes with the scsg sampler
WRAPPERS["ordered-sgd"] = "ordered-sgd"  # steps on the mean of each batch's largest losses

REWEIGHTINGS = {
    "unweighted": lambda hp: NoReweightingPolicy(),
    "predicted": lambda hp: BiasedReweightingPolicy(hp["k"]),
    "adjusted": lambda hp: AdjustedBiasedReweightingPolicy(hp["k"]),
    "correcting": lambda hp: CorrectingReweightingPolicy(hp["k"]),
}

# Each takes (dataset, reweighting, wrapper, hyperparameters).
BASE_SAMPLERS = {
    "uniform": lambda d, r, w, hp: UniformSampler(d, r, seed=hp["seed"]),
    "model": lambda d, r, w, hp: ModelSampler(
        d, r, w, large_batch=hp["presample"],
        forward_batch_size=hp["forward_batch_size"], seed=hp["seed"],
    ),
    "lstm": lambda d, r, w, hp: LSTMSampler(
        d, r, presample=hp["presample"], warmup=hp["warmup"], seed=hp["seed"]
    ),
    "pcg": lambda d, r, w, hp: PerClassGaussian(
        d, r, alpha=hp["alpha"], presample=hp["presample"], seed=hp["seed"]
    ),
    "obs": lambda d, r, w, hp: OnlineBatchSelectionSampler(
        d, r, w, steps_per_epoch=hp["steps_per_epoch"], recompute=hp["obs_recompute"],
        s_e=(hp["obs_se0"], hp["obs_seend"]), n_epochs=hp["obs_epochs"],
        forward_batch_size=hp["forward_batch_size"], seed=hp["seed"],
    ),
    "history": lambda d, r, w, hp: HistorySampler(
        d, r, w, forward_batch_size=hp["forward_batch_size"],
        recompute=hp["history_recompute"], seed=hp["seed"],
    ),
    "constant-variance": lambda d, r, w, hp: ConstantVarianceSampler(
        d, r, w, backward_time=hp["backward_time"], extra_samples=hp["extra_samples"],
        seed=hp["seed"],
    ),
    "constant-time": lambda d, r, w, hp: ConstantTimeSampler(
        d, r, w, backward_time=hp["backward_time"], tau_th=hp["tau_th"],
        ratio=hp["ratio"], min_a=hp["min_a"], seed=hp["seed"],
    ),
    "scsg": lambda d, r, w, hp: SCSGSampler(
        d, r, w, B=hp["scsg_B"], B_over_b=hp["scsg_B_over_b"], B_rate=hp["scsg_B_rate"],
        seed=hp["seed"],
    ),
    "selective-backprop": lambda d, r, w, hp: SelectiveBackpropSampler(
        d, r, w, beta=hp["sb_beta"], history=hp["sb_history"], staleness=hp["sb_staleness"],
        seed=hp["seed"],
    ),
    "rho-loss": lambda d, r, w, hp: reducible_loss_sampler(
        d, w, holdout=hp["rho_holdout"], epochs=hp["rho_epochs"], batch_size=hp["batch_size"],
        presample=hp["presample"], forward_batch_size=hp["forward_batch_size"], seed=hp["seed"],
    ),
    "infobatch": lambda d, r, w, hp: InfoBatchSampler(
        d, r, steps=hp["train_for"], prune_ratio=hp["ib_prune_ratio"], delta=hp["ib_delta"],
        seed=hp["seed"],
    ),
}
# These select rather than draw by scores: no smoothing prefixes.
SELECTIONS = ("selective-backprop", "rho-loss", "infobatch")

# prefix: the condition of a ConditionalStartSampler (uniform steps until it holds)
CONDITIONS = {
    "warmup-": lambda hp: WarmupCondition(hp["warmup"]),
    "exp-": lambda hp: ExpCondition(hp["exp_th"]),
    "tv-": lambda hp: TotalVariationCondition(hp["tv_th"]),
    "vr-": lambda hp: VarianceReductionCondition(hp["vr_th"]),
}

# prefix: (decorator, keyword of the smoothing value, its default)
SMOOTHINGS = {
    "smooth-": (AdditiveSmoothingSampler, "c", 1.0),
    "adaptive-smooth-": (AdaptiveAdditiveSmoothingSampler, "percentage", 0.5),
    "power-smooth-": (PowerSmoothingSampler, "power", 0.5),
}

# Every sampler name, e.g. "power-smooth-lstm": (smoothing prefix, base sampler).
SAMPLERS = {
    prefix + base: (prefix, base)
    for prefix in ("", *SMOOTHINGS)
    for base in BASE_SAMPLERS
    if not (prefix and base in SELECTIONS)
}
# The samplers that score, started by a condition, e.g. "vr-model", "warmup-smooth-lstm".
SAMPLERS.update({
    condition + name: (condition + prefix, base)
    for condition in CONDITIONS
    for name, (prefix, base) in list(SAMPLERS.items())
    if base in ("model", "lstm")
})


def build_sampler(name, dataset, reweighting, wrapper, hp):
    """The sampler called `name`, e.g. `"model"` or `"power-smooth-lstm"`.

    Raises:
        ValueError: for an unknown name.
    """
    prefix, base = _lookup(SAMPLERS, name, "sampler")
    condition = next((c for c in CONDITIONS if prefix.startswith(c)), "")
    prefix = prefix[len(condition):]
    sampler = BASE_SAMPLERS[base](dataset, reweighting, wrapper, hp)
    if prefix:
        decorator, keyword, default = SMOOTHINGS[prefix]
        value = default if hp["smooth"] is None else hp["smooth"]
        sampler = decorator(sampler, **{keyword: value})
    if condition:
        sampler = ConditionalStartSampler(sampler, CONDITIONS[condition](hp))
    return sampler


class TextLog:
    """Lines of space-separated values in a file of the output folder."""

    def __init__(self, directory, name):
        self._file = open(os.path.join(directory, name), "w")
        self._names = None

    def write(self, *values):
        self._file.write(" ".join(str(v) for v in values) + "\n")
        self._file.flush()

    def write_logs(self, step, logs):
        """Write `step` and the values of the dict `logs`, sorted by name.

        The first call writes a header line `step NAME...` before.
        """
        if self._names is None:
            self._names = sorted(logs)
            self.write("step", *self._names)
        self.write(step, *(logs[name] for name in self._names))

    def close(self):
        self._file.close()


def _learning_rate(hp, step):
    """The initial rate divided by 10 for every reduction at or before `step`."""
    return hp["lr"] / 10 ** sum(step >= s for s in hp["lr_reductions"])


def build(args):
    """The dataset, the wrapped model and the sampler that `args` name.

    Raises:
        ValueError: for an unknown name.
        FileNotFoundError: for a dataset that is not available.
    """
    # The samplers that plan the whole run (infobatch) read its length.
    hp = {**args.hyperparams, "train_for": args.train_for}
    optimizer = _lookup(OPTIMIZERS, hp["opt"], "opt")(hp)
    dataset = _lookup(DATASETS, args.dataset, "dataset")(hp)
    model = models.get(args.model)(dataset.shape, dataset.output_size, optimizer=optimizer)
    reweighting = _lookup(REWEIGHTINGS, args.reweighting, "reweighting")(hp)
    score = _lookup(WRAPPERS, args.wrapper, "wrapper")
    if (score == "svrg") != (_lookup(SAMPLERS, args.sampler, "sampler")[1] == "scsg"):
        raise ValueError(
            "The svrg wrapper and the scsg sampler go together. Received: "
            f"wrapper={args.wrapper!r}, sampler={args.sampler!r}"
        )
    if score == "svrg":
        wrapper = SVRGWrapper(model)
    elif score == "ordered-sgd":
        wrapper = OrderedSGDWrapper(model, q=hp["osgd_q"])
    else:
        wrapper = OracleWrapper(model, reweighting, score=score)
    return dataset, wrapper, build_sampler(args.sampler, dataset, reweighting, wrapper, hp)


def _evaluations(args, dataset):
    """`(x, y, split)` of the test set and, if asked, of a training subset."""
    x_test, y_test = dataset.test_data[:]
    evaluations = [(x_test, y_test, "val")]
    if args.save_train_scores:
        size = len(dataset.train_data)
        subset = np.arange(0, size, max(1, size // len(x_test)))
        evaluations.append((*dataset.train_data[subset], "train"))
    return evaluations


def train(args, dataset, wrapper, sampler):
    """Run `args.train_for` steps and write the log files of `LOG_FILES`."""
    hp, output = args.hyperparams, args.output_dir
    batch_size = hp["batch_size"]
    evaluations = _evaluations(args, dataset)
    logs = {name: TextLog(output, name) for name in ("train.txt", "clock.txt", "lr.txt")}
    for *_, split in evaluations:
        logs[f"{split}_eval.txt"] = TextLog(output, f"{split}_eval.txt")
        if args.save_scores:
            logs[f"{split}_scores.txt"] = TextLog(output, f"{split}_scores.txt")
    if args.save_predictions:
        logs["predictions.txt"] = TextLog(output, "predictions.txt")

    start, lr = time.time(), None
    for step in range(1, args.train_for + 1):
        if _learning_rate(hp, step - 1) != lr:
            lr = _learning_rate(hp, step - 1)
            wrapper.set_lr(lr)
            logs["lr.txt"].write(step - 1, lr)
        batch = sampler.sample(batch_size)
        wrapper.reset_metrics()  # log this step's values, not running means
        _, step_logs, scores = wrapper.train_batch(
            batch.x, batch.y, batch.weights, batch.metric_weights
        )
        sampler.update(batch.idxs, scores)
        logs["train.txt"].write_logs(step, step_logs)
        if args.save_predictions and batch.scores is not None:
            for idx, observed, predicted in zip(batch.idxs, scores, batch.scores):
                logs["predictions.txt"].write(step, idx, observed, predicted)
        logs["clock.txt"].write(step, time.time() - start)
        if step % args.validate_every == 0:
            for x, y, split in evaluations:
                logs[f"{split}_eval.txt"].write_logs(
                    step, wrapper.evaluate(x, y, batch_size=batch_size)
                )
                if args.save_scores:
                    scores = wrapper.score(x, y, batch_size=batch_size)
                    logs[f"{split}_scores.txt"].write(step, *scores)
        if args.save_model and step % args.snapshot_period == 0:
            wrapper.model.save(os.path.join(output, f"model.{step:06d}.keras"))
    if args.save_model:
        wrapper.model.save(os.path.join(output, "model.keras"))
    for log in logs.values():
        log.close()


def _epilog():
    hyperparameters = "\n".join(
        f"  {name}: {kind.__name__}, default {default}; {meaning}"
        for name, (kind, default, meaning) in HYPERPARAMETERS.items()
    )
    files = "\n".join(f"  {name}: {meaning}" for name, meaning in LOG_FILES.items())
    return (
        "hyperparameters: --hyperparams is a list of NAME=<type><value> entries "
        "separated by ';', the type being i (int), f (float), s (string) or I, F, "
        f"S (comma-separated lists of them)\n{hyperparameters}\n\n"
        f"files written to OUTPUT_DIR, one line per event:\n{files}"
    )


def build_parser():
    """The `argparse.ArgumentParser` of the command."""
    parser = argparse.ArgumentParser(
        prog="importance-sampling",
        description="Train a model of the zoo with importance sampling and log "
                    "the training to text files, one line per event.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    positionals = [
        ("model", models.MODELS, "the model to build"),
        ("wrapper", WRAPPERS, "how the model scores samples (loss, gradient norm, error)"),
        ("sampler", SAMPLERS, "how batches are drawn"),
        ("reweighting", REWEIGHTINGS, "how sampled items are weighted"),
        ("dataset", DATASETS, "the data to train on"),
    ]
    for name, table, meaning in positionals:
        parser.add_argument(name, metavar=name.upper(), choices=list(table),
                            help=f"{meaning}: {', '.join(table)}")
    parser.add_argument("output_dir", metavar="OUTPUT_DIR", help="folder of the log files")
    parser.add_argument("--hyperparams", default="",
                        help="typed hyperparameters, e.g. 'batch_size=i128;lr=f0.003;"
                             "lr_reductions=I10000;k=f0.5' (see below)")
    parser.add_argument("--train_for", type=int, default=10000,
                        help="number of optimizer steps (default: 10000)")
    parser.add_argument("--validate_every", type=int, default=300,
                        help="steps between validations (default: 300)")
    parser.add_argument("--save_scores", action="store_true",
                        help="also log the per-sample scores of every validation")
    parser.add_argument("--save_train_scores", action="store_true",
                        help="also evaluate on a training subset at every validation")
    parser.add_argument("--save_predictions", action="store_true",
                        help="log the observed and predicted score of every sampled item")
    parser.add_argument("--save_model", action="store_true",
                        help="save the model every --snapshot_period steps and at the end")
    parser.add_argument("--snapshot_period", type=int, default=3000,
                        help="steps between model snapshots (default: 3000)")
    return parser


def main(argv=None):
    """Run the command with the arguments `argv` (default: `sys.argv[1:]`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.hyperparams = parse_hyperparams(args.hyperparams)
    except ValueError as error:
        parser.error(str(error))
    for option in ("train_for", "validate_every", "snapshot_period"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} must be at least 1. Received: {getattr(args, option)}")
    keras.utils.set_random_seed(args.hyperparams["seed"])
    os.makedirs(args.output_dir, exist_ok=True)
    try:
        parts = build(args)
    except (ValueError, FileNotFoundError) as error:
        parser.exit(1, f"importance-sampling: error: {error}\n")
    train(args, *parts)
