"""Per-sample losses, the ranking of a dataset by loss, and a report of it.

"Sort the dataset descending by loss" and look: which instances does the
model find hardest and easiest, and which labels fill each tenth of the
ranking?

```python
from importance_sampling.ranking import loss_report, per_sample_loss, rank_by_loss

losses = per_sample_loss(model, x, y)        # the compiled loss of each sample
ranking = rank_by_loss(model, x, y)          # indices, highest loss first
report = loss_report(model, x, y, top=10)    # prints the hardest, the easiest
                                             # and the labels of every decile
```

The losses are the model's compiled losses (their `loss_weights`-weighted
sum over several outputs), computed in inference mode, in forward batches of
`batch_size`, on every Keras backend. They are the losses by which the
training classes of the library score samples.
"""

import dataclasses
import math
import warnings
import weakref
from typing import Any, NamedTuple, Optional

import keras
import numpy as np

from importance_sampling import candidates, keras_internals
from importance_sampling.datasets import BaseDataset
from importance_sampling.model_wrappers import OracleWrapper
from importance_sampling.reweighting import BiasedReweightingPolicy
from importance_sampling.utils import checks, nested

BINS = ("quantile", "range")
STRATEGIES = ("percentile", "mass")

# One scorer per model, so that its compiled scoring is traced once.
_WRAPPERS = weakref.WeakKeyDictionary()


def _own_compute_loss(model):
    """Whether a class below `keras.Model` defines `compute_loss`."""
    for klass in type(model).__mro__:
        if klass is keras.Model:
            return False
        if "compute_loss" in vars(klass):
            return True
    return False


def _wrapper(model):
    """The `OracleWrapper` scoring `model` by loss, made once per model and compilation."""
    if not isinstance(model, keras.Model):
        raise ValueError(
            "Per-sample losses need a compiled `keras.Model`. Received: model "
            f"of type {type(model).__name__}"
        )
    if not getattr(model, "compiled", False):
        raise ValueError(
            "Per-sample losses are the losses the model was compiled with: "
            f"compile the model {model.name!r} with `loss=...` first"
        )
    if _own_compute_loss(model):
        warnings.warn(
            f"The model {model.name!r} overrides `compute_loss`. Per-sample "
            "losses are the losses given to `compile()` (weighted by "
            "`loss_weights`), computed without the override, which cannot be "
            "split into one value per sample.",
            UserWarning,
            stacklevel=3,
        )
    compilation = id(getattr(model, "_compile_loss", None))
    cached = _WRAPPERS.get(model)
    if cached is None or cached[0] != compilation:
        cached = (compilation, OracleWrapper(model, BiasedReweightingPolicy(1.0)))
        _WRAPPERS[model] = cached
    return cached[1]


def scored_losses(wrapper, x, y, batch_size=128):
    """The per-sample losses of arrays `(x, y)` with an `OracleWrapper`, batch by batch.

    Every forward batch has `batch_size` samples (the last one fewer), so
    that a compiled scoring is traced for at most two shapes.
    """
    count = nested.num_samples(x)
    return _batched_losses(wrapper, lambda rows: nested.take((x, y), rows), count,
                           batch_size)


def _batched_losses(wrapper, read, count, batch_size):
    """The losses of `count` samples, `read(indices)` giving `(x, y)`, batch by batch.

    A last, partial batch is filled up with its own first rows (whose
    losses are dropped), so that every forward batch has the same shape
    and a compiled scoring is traced once.
    """
    parts = []
    for start in range(0, count, batch_size):
        rows = np.arange(start, min(start + batch_size, count))
        size = len(rows)
        if count > batch_size and size < batch_size:
            rows = np.resize(rows, batch_size)
        x_b, y_b = read(rows)
        parts.append(wrapper.score(x_b, y_b, batch_size)[:size])
    if not parts:
        return np.zeros(0, "float32")
    return np.concatenate(parts).astype("float32")


def dataset_losses(wrapper, dataset, batch_size=128):
    """The per-sample losses of the training split of a `BaseDataset`."""
    return _batched_losses(wrapper, lambda rows: dataset.train_data[rows],
                           len(dataset.train_data), batch_size)


def _stream_batches(stream):
    """The `(x, y)` of every batch of one pass over a stream, as NumPy."""
    adapter = keras_internals.get_data_adapter(stream, shuffle=False)
    for batch in adapter.get_numpy_iterator():
        x, y, _ = keras.utils.unpack_x_y_sample_weight(batch)
        if y is None:
            raise ValueError(
                "Per-sample losses need targets: the batches of the stream "
                "must be `(x, y)` or `(x, y, sample_weight)` tuples"
            )
        yield nested.to_numpy(x), nested.to_numpy(y)


def per_sample_loss(model, x, y=None, batch_size=128):
    """The loss of every sample, in inference mode.

    It is the loss the model was compiled with, one value per sample (for
    several outputs, the `loss_weights`-weighted sum of the outputs'
    losses; a loss over time steps or pixels is averaged over them, masks
    respected), before any `sample_weight` or `class_weight`.

    Args:
        model: A compiled `keras.Model`. A model that overrides
            `compute_loss` gets a warning: its override is not used.
        x: Inputs: an array, or a list or dict of arrays; a
            `importance_sampling.datasets.BaseDataset` (its training
            split); or a stream of `(x, y)` batches (a `tf.data.Dataset`, a
            `keras.utils.PyDataset`, a Python generator or a
            `torch.utils.data.DataLoader`), read once, in order.
        y: Targets for array inputs; `None` for a dataset or a stream.
        batch_size: Samples per forward pass. Defaults to `128`.

    Returns:
        A float32 NumPy array with one loss per sample, in the order of the
        data.

    Raises:
        ValueError: for a model that is not compiled, arrays without `y`, or
            a stream with `y` or without targets.

    Example:

    ```python
    losses = per_sample_loss(model, x_train, y_train, batch_size=256)
    hardest = losses.argmax()
    ```
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(
            f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}"
        )
    wrapper = _wrapper(model)
    if isinstance(x, BaseDataset):
        if y is not None:
            raise ValueError("`y` must be `None` when `x` is a dataset, which holds the targets")
        return dataset_losses(wrapper, x, batch_size)
    if candidates.is_stream(x):
        if y is not None:
            raise ValueError(
                "`y` must be `None` when `x` is a stream of batches, which "
                f"carries its targets. Received: y of type {type(y).__name__}"
            )
        parts = [scored_losses(wrapper, x_b, y_b, batch_size)
                 for x_b, y_b in _stream_batches(x)]
        return np.concatenate(parts) if parts else np.zeros(0, "float32")
    if y is None:
        raise ValueError("`y` is required when `x` holds arrays. Received: y=None")
    x, y = nested.to_numpy(x), nested.to_numpy(y)
    nested.check_lengths(x, y, "loss")
    return scored_losses(wrapper, x, y, batch_size)


def ranking_order(losses):
    """The indices of `losses` by descending loss, ties by ascending index.

    NaN losses come first: a sample whose loss is not a number is the one
    to look at.
    """
    losses = np.asarray(losses, dtype="float64").reshape(-1)
    key = np.where(np.isnan(losses), np.inf, losses)
    return np.lexsort((np.arange(len(key)), -key))


class Ranking(NamedTuple):
    """A dataset ranked by loss.

    Attributes:
        indices: The sample indices, highest loss first (ties: lower index
            first).
        losses: The loss of every sample, in the order of the data
            (`losses[indices]` is descending).
    """

    indices: Any
    losses: Any

    @property
    def sorted_losses(self):
        """The losses in ranking order, highest first."""
        return self.losses[self.indices]


def rank_by_loss(model, x=None, y=None, batch_size=128):
    """Rank the samples by descending loss.

    Args:
        model: A compiled `keras.Model`, whose `per_sample_loss` ranks the
            samples; or a 1-d array of losses already computed.
        x: The inputs, as for `per_sample_loss`.
        y: The targets, as for `per_sample_loss`.
        batch_size: Samples per forward pass. Defaults to `128`.

    Returns:
        A `Ranking`: `indices` from the highest loss to the lowest (ties in
        the order of the data) and the `losses` of all samples.

    Example:

    ```python
    ranking = rank_by_loss(model, x_train, y_train)
    top = ranking.indices[:20]            # the 20 hardest training samples
    ```
    """
    if isinstance(model, keras.Model):
        losses = per_sample_loss(model, x, y, batch_size=batch_size)
    else:
        if x is not None or y is not None:
            raise ValueError(
                "Pass either a model with `x` and `y`, or an array of losses "
                "alone. Received: losses with data"
            )
        losses = np.asarray(model, dtype="float32").reshape(-1)
    return Ranking(ranking_order(losses), losses)


# Selections of the top or the bottom of a ranking

def _check_fraction(fraction):
    return checks.check_number("fraction", fraction, low=0, high=1, low_open=True)


def _ascending_order(losses):
    """Indices by ascending loss, ties by ascending index."""
    return np.lexsort((np.arange(len(losses)), losses))


def select_percentile(losses, fraction, from_top=True):
    """The `fraction` of the samples with the highest (or lowest) losses.

    Args:
        losses: A 1-d array of per-sample losses.
        fraction: The share of the samples selected, in `(0, 1]`: the
            `ceil(fraction * N)` first samples of the ranking (at least one).
        from_top: `True` for the highest losses, `False` for the lowest.

    Returns:
        The selected indices, in ranking order (highest loss first, or
        lowest loss first for `from_top=False`; ties by index).
    """
    fraction = _check_fraction(fraction)
    losses = _finite_losses(losses)
    count = min(len(losses), max(1, math.ceil(fraction * len(losses) - 1e-9)))
    order = ranking_order(losses) if from_top else _ascending_order(losses)
    return order[:count]


def select_mass(losses, fraction, from_top=True):
    """The fewest highest-loss samples that carry `fraction` of the total loss.

    With `from_top=False`, the lowest-loss samples, taken in ascending order
    of loss until they carry `fraction` of the total loss.

    Args:
        losses: A 1-d array of non-negative per-sample losses.
        fraction: The share of the total loss, in `(0, 1]`.
        from_top: `True` for the highest losses, `False` for the lowest.

    Returns:
        The selected indices, in the order they were taken (at least one).

    Raises:
        ValueError: for negative or non-finite losses.
    """
    fraction = _check_fraction(fraction)
    losses = _finite_losses(losses)
    if np.any(losses < 0):
        raise ValueError(
            "The `mass` strategy selects by shares of the total loss, which "
            "needs non-negative losses. Received: a loss of "
            f"{float(losses.min())}"
        )
    order = ranking_order(losses) if from_top else _ascending_order(losses)
    if len(order) == 0:
        return order
    cumulative = np.cumsum(losses[order].astype("float64"))
    total = cumulative[-1]
    # The first prefix whose loss reaches the fraction of the total; a
    # relative tolerance keeps `fraction=1` from needing an exact sum.
    target = fraction * total * (1 - 1e-12)
    count = int(np.searchsorted(cumulative, target, side="left")) + 1
    return order[:min(count, len(order))]


def select(losses, strategy, fraction, from_top=True):
    """`select_percentile` or `select_mass`, by the name of the strategy."""
    if strategy == "percentile":
        return select_percentile(losses, fraction, from_top)
    if strategy == "mass":
        return select_mass(losses, fraction, from_top)
    raise ValueError(f"`strategy` must be one of {STRATEGIES}. Received: strategy={strategy!r}")


def _finite_losses(losses):
    losses = np.asarray(losses, dtype="float64").reshape(-1)
    if not np.all(np.isfinite(losses)):
        raise ValueError(
            "Selecting by loss needs finite losses. Received: "
            f"{int(np.sum(~np.isfinite(losses)))} NaN or infinite losses"
        )
    return losses


# The report

def class_labels(y):
    """The class of every sample of targets `y`, or `None` if they are not classes.

    One-hot (or probability) rows give their `argmax`; integer labels, of
    shape `(N,)` or `(N, 1)`, themselves.
    """
    if y is None or keras.tree.is_nested(y):
        return None
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    y = y.reshape(len(y), -1)
    if y.shape[1] != 1:
        return None
    y = y[:, 0]
    if np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_):
        return y.astype("int64")
    if np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) \
            and np.all(y == np.round(y)) and np.all(y >= 0):
        return y.astype("int64")
    return None


@dataclasses.dataclass
class LossBin:
    """One bin of a loss report (a decile of the ranking, or of the loss range).

    Attributes:
        number: 1 for the bin of the highest losses.
        low: The lowest loss the bin holds (its lower edge for `"range"`).
        high: The highest loss the bin holds (its upper edge for `"range"`).
        count: The number of samples in the bin.
        mean_loss: Their mean loss (NaN for an empty bin).
        label_counts: The number of samples of each class, or `None`.
        most_frequent: The most frequent class (the lowest on ties), or
            `None` for an empty bin or targets that are not classes.
    """

    number: int
    low: float
    high: float
    count: int
    mean_loss: float
    label_counts: Optional[list] = None
    most_frequent: Optional[int] = None


@dataclasses.dataclass
class LossReport:
    """What `loss_report` found; `str(report)` is its table.

    Attributes:
        losses: The loss of every sample, in the order of the data.
        ranking: The indices by descending loss.
        labels: The class of every sample, or `None`.
        predictions: The predicted class of every sample, or `None`.
        class_names: A name per class, or `None`.
        hardest: The indices of the `top` highest losses.
        easiest: The indices of the `top` lowest losses, lowest first.
        bins: The `LossBin`s, highest losses first.
        kind: `"quantile"` (equal-count bins) or `"range"` (equal-width).
    """

    losses: Any
    ranking: Any
    labels: Any
    predictions: Any
    class_names: Any
    hardest: Any
    easiest: Any
    bins: list
    kind: str

    def name(self, label):
        """The name of class `label`."""
        if label is None:
            return "-"
        if self.class_names is not None and 0 <= label < len(self.class_names):
            return str(self.class_names[label])
        return str(int(label))

    def _instance_rows(self, indices):
        rows = []
        for rank, index in zip(self._ranks(indices), indices):
            row = f"{rank:>6} {index:>8} {self.losses[index]:>10.4f}"
            if self.labels is not None:
                row += f"  {self.name(int(self.labels[index])):<16}"
            if self.predictions is not None:
                row += f"  {self.name(int(self.predictions[index])):<16}"
            rows.append(row)
        return rows

    def _ranks(self, indices):
        positions = np.empty(len(self.ranking), dtype="int64")
        positions[self.ranking] = np.arange(1, len(self.ranking) + 1)
        return positions[np.asarray(indices, dtype="int64")]

    def table(self):
        """The report as text: the hardest, the easiest and the bins."""
        header = f"{'rank':>6} {'index':>8} {'loss':>10}"
        if self.labels is not None:
            header += f"  {'label':<16}"
        if self.predictions is not None:
            header += f"  {'predicted':<16}"
        lines = [f"Hardest {len(self.hardest)} of {len(self.losses)} samples "
                 "(highest loss first):", header]
        lines += self._instance_rows(self.hardest)
        lines += ["", f"Easiest {len(self.easiest)} samples (lowest loss first):", header]
        lines += self._instance_rows(self.easiest)
        kind = ("deciles of the ranking (equal counts)" if self.kind == "quantile"
                else "tenths of the loss range (equal widths)")
        lines += ["", f"Loss bins, {kind}, highest losses first:"]
        header = f"{'bin':>4} {'losses':>21} {'count':>7} {'mean':>9}"
        if self.labels is not None:
            header += f"  {'most frequent':<16} {'share':>6}  labels (count)"
        lines.append(header)
        for b in self.bins:
            row = (f"{b.number:>4} {b.low:>10.4f}-{b.high:<10.4f} {b.count:>7} "
                   f"{b.mean_loss:>9.4f}")
            if self.labels is not None:
                share = (b.label_counts[b.most_frequent] / b.count) if b.count else 0.0
                mix = sorted((-c, k) for k, c in enumerate(b.label_counts) if c)[:4]
                row += (f"  {self.name(b.most_frequent):<16} {share:>6.0%}  "
                        + ", ".join(f"{self.name(k)} ({-c})" for c, k in mix))
            lines.append(row)
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    def to_dict(self):
        """The report as plain values (for JSON)."""
        def instances(indices):
            return [{
                "index": int(i), "loss": float(self.losses[i]),
                "label": None if self.labels is None else self.name(int(self.labels[i])),
                "predicted": (None if self.predictions is None
                              else self.name(int(self.predictions[i]))),
            } for i in indices]

        return {
            "num_samples": int(len(self.losses)),
            "kind": self.kind,
            "hardest": instances(self.hardest),
            "easiest": instances(self.easiest),
            "bins": [{
                **dataclasses.asdict(b),
                "most_frequent": (None if b.most_frequent is None
                                  else self.name(b.most_frequent)),
            } for b in self.bins],
        }


def _bins(losses, ranking, labels, num_classes, kind, count):
    """`count` `LossBin`s of the samples, highest losses first."""
    if kind == "quantile":
        members = np.array_split(ranking, count)
        edges = None
    else:
        low, high = float(np.min(losses)), float(np.max(losses))
        edges = np.linspace(low, high, count + 1)
        # Bin 1 holds the highest losses; the maximum falls in it.
        slot = np.clip(np.searchsorted(edges, losses, side="right") - 1, 0, count - 1)
        members = [np.flatnonzero(slot == count - 1 - b) for b in range(count)]
    bins = []
    for number, idxs in enumerate(members, start=1):
        values = losses[idxs]
        if edges is None:
            low = float(values.min()) if len(idxs) else float("nan")
            high = float(values.max()) if len(idxs) else float("nan")
        else:
            low, high = float(edges[count - number]), float(edges[count - number + 1])
        counts = most = None
        if labels is not None:
            counts = np.bincount(labels[idxs], minlength=num_classes).tolist()
            most = int(np.argmax(counts)) if len(idxs) else None
        bins.append(LossBin(
            number, low, high, int(len(idxs)),
            float(values.mean()) if len(idxs) else float("nan"), counts, most,
        ))
    return bins


def loss_report(model, x, y, class_names=None, top=20, bins="quantile",
                batch_size=128, num_bins=10, print_table=True):
    """Report the hardest and easiest samples and the labels of every loss decile.

    Args:
        model: A compiled `keras.Model`.
        x: The inputs (arrays, as for `per_sample_loss`).
        y: The targets: class labels, one-hot rows or anything else (then
            the report has no label columns).
        class_names: A name per class, to show instead of class numbers.
        top: How many of the hardest and of the easiest samples to list.
            Defaults to `20`.
        bins: `"quantile"` (the default) for ten bins of equal counts, the
            deciles of the ranking; `"range"` for ten bins of equal width
            over the range of the losses.
        batch_size: Samples per forward pass. Defaults to `128`.
        num_bins: The number of bins. Defaults to `10`.
        print_table: Print the report's table. Defaults to `True`.

    Returns:
        A `LossReport`.

    Example:

    ```python
    report = loss_report(model, x_test, y_test, class_names=names, top=10)
    report.bins[0].most_frequent      # the most frequent class of the hardest tenth
    plot_loss_report(report, "losses.png")
    ```
    """
    if bins not in BINS:
        raise ValueError(f"`bins` must be one of {BINS}. Received: bins={bins!r}")
    for name, value in (("top", top), ("num_bins", num_bins)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    losses = per_sample_loss(model, x, y, batch_size=batch_size)
    if len(losses) == 0:
        raise ValueError("The report needs at least one sample. Received: no samples")
    ranking = ranking_order(losses)
    labels = class_labels(y)
    predictions = None
    num_classes = 0
    if labels is not None:
        predictions = _predicted_classes(model, x, batch_size)
        num_classes = int(labels.max()) + 1
        if class_names is not None:
            num_classes = max(num_classes, len(class_names))
        if predictions is not None:
            num_classes = max(num_classes, int(predictions.max()) + 1)
    report = LossReport(
        losses=losses, ranking=ranking, labels=labels, predictions=predictions,
        class_names=None if class_names is None else list(class_names),
        hardest=ranking[:top], easiest=ranking[::-1][:top],
        bins=_bins(losses.astype("float64"), ranking, labels, num_classes, bins, num_bins),
        kind=bins,
    )
    if print_table:
        print(report.table())
    return report


def _predicted_classes(model, x, batch_size):
    """The `argmax` of a single classification output, or `None`."""
    outputs = getattr(model, "outputs", None)
    if outputs is not None and len(outputs) != 1:
        return None
    predictions = model.predict(x, batch_size=batch_size, verbose=0)
    if keras.tree.is_nested(predictions):
        return None
    predictions = np.asarray(predictions)
    if predictions.ndim != 2:
        return None
    if predictions.shape[1] == 1:
        return (predictions[:, 0] > 0.5).astype("int64")
    return predictions.argmax(axis=1)


def plot_loss_report(report, path=None, max_classes=10):
    """Save a figure of a `LossReport`: the label mix of every bin and the loss histogram.

    Args:
        report: A `LossReport`.
        path: Where to save the figure (a PNG, SVG or PDF path), or `None`
            to only return it.
        max_classes: The number of most frequent classes shown apart; the
            others are stacked as "other". Defaults to `10`.

    Returns:
        The `matplotlib.figure.Figure`.
    """
    import matplotlib

    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with_labels = report.labels is not None
    fig, axes = plt.subplots(1, 2 if with_labels else 1, figsize=(11 if with_labels else 6, 4.2),
                             squeeze=False)
    axes = axes[0]
    numbers = [b.number for b in report.bins]
    if with_labels:
        counts = np.array([b.label_counts for b in report.bins], dtype="float64")
        shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        overall = counts.sum(axis=0)
        shown = [int(k) for k in np.argsort(-overall, kind="stable")[:max_classes] if overall[k]]
        bottom = np.zeros(len(numbers))
        colours = plt.get_cmap("tab10" if len(shown) <= 10 else "tab20")
        for position, k in enumerate(shown):
            axes[0].bar(numbers, shares[:, k], bottom=bottom, label=report.name(k),
                        color=colours(position % colours.N))
            bottom += shares[:, k]
        rest = 1 - bottom
        if np.any(rest > 1e-9):
            axes[0].bar(numbers, rest, bottom=bottom, label="other", color="lightgrey")
        axes[0].set_xticks(numbers)
        axes[0].set_xlabel("loss bin (1 = highest losses)")
        axes[0].set_ylabel("share of the bin's samples")
        title = "deciles of the ranking" if report.kind == "quantile" else "tenths of the loss range"
        axes[0].set_title(f"Label mix of the {title}")
        axes[0].legend(fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    histogram = axes[-1]
    histogram.hist(report.losses, bins=50, color="tab:blue")
    histogram.set_yscale("log")
    histogram.set_xlabel("per-sample loss")
    histogram.set_ylabel("samples")
    histogram.set_title(f"Losses of {len(report.losses)} samples")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig
