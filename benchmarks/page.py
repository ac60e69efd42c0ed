"""The page `docs/benchmarks.md`, written from the benchmark results."""

import datetime

from benchmarks import workloads
from benchmarks.report import TARGETS

COMMAND = "python benchmarks/run.py --docs docs/benchmarks.md"
TARGET_256 = dict((name, limit) for name, limit, _ in TARGETS)["importance_256"]

_INTRO = """# Benchmarks

How much an importance-sampling step costs compared with a plain Keras step,
and whether importance sampling reaches a test accuracy sooner. Regenerate
this page (about 15 minutes on 2 CPU cores) with:

```
{command}
```

`python benchmarks/run.py` alone prints the per-step tables,
`--jit-compile` the per-step tables with XLA and `--quick` a fast smoke run;
each also writes its results as JSON next to `run.py`. Adding `--from-json`
to the command above rewrites this page from those JSON files without
measuring again. The rows of the other Keras backends come from
`KERAS_BACKEND=jax python benchmarks/run.py --backend-rows` (and `torch`),
run in an environment with that backend. The time-to-accuracy section is
measured apart, over several seeds, by `python benchmarks/time_to_accuracy.py`
(about 40 minutes on 2 shared CPU cores), which keeps one JSON file per run
in `benchmarks/results/time_to_accuracy/`; `python
benchmarks/time_to_accuracy.py --docs` rewrites that section alone, and the
command above copies it from the same files.

Measured on {date}: {machine}, {cpu_count} cores, no GPU, {backend}
{backend_version}, Keras {keras}. Load average (1, 5, 15 min) at the start:
{load}. Other processes shared the machine, so single timings are noisy;
the variants run in interleaved rounds in one process and every ratio is a
median over the rounds.

## Time per step

Batch 128, synthetic data of 60 000 samples (784 features for the MLP
784-512-512-10, 28x28x1 images for the small CNN), Adam, categorical
cross-entropy, accuracy metric. Median milliseconds per optimizer step after
warm-up, including the sampling and Keras's `fit` loop, which drives both.
The `steps_per_execution=8` rows run eight steps per call of the train
function, for `model.fit` and for importance sampling alike.
"Arithmetic" is what an importance-sampling step cannot avoid: one compiled
forward pass over the presample (per-sample losses, inference mode) plus one
bare compiled weighted train step (no metrics). Both are timed on tensors
made beforehand, each call on another random draw from the data, as in
training. Trace counts are those of the library's train steps after the
first round and at the end (a round is one `fit` call; `model.fit`'s own
count is not exposed, hence "n/a"): `train` is the importance-sampling train
step, which scores, draws and trains, and `score` the host samplers'
scoring. Peak RSS: each variant trains 50 steps in a fresh process on the
60 000-sample float32 dataset; the peak is the high-water mark of the
resident memory during training (reset once the data and the model exist,
so the data is counted but the start-up is not).

"""

_FINDINGS = """
## Reading the results

- **How a step runs.** `ImportanceTraining.fit` is `keras.Model.fit` with an
  importance-sampling `train_step`: Keras's loop calls it with the indices of
  `presample` uniformly drawn candidates; the step gathers them from the
  training arrays (kept in host memory), scores them in forward batches of
  128, draws the batch in proportion to the scores, weighs it and takes the
  weighted optimizer step, in one compiled call.
- **Presample 256 against `model.fit`.** An importance-sampling step costs
  a `model.fit` step plus a forward pass over the presample: here the MLP's
  step costs {ratio_256:.2f} times a `model.fit` step, and the arithmetic
  alone {arithmetic_256:.2f} times (a forward pass over 256 samples costs
  {forward_share:.0f} % of the bare step). {headroom}
- **`steps_per_execution=8`** removes a host round trip per step for both:
  importance sampling then costs {ratio_spe8:.2f} times `model.fit` with the
  same setting.
- **Presample 1024 against its arithmetic.** What remains above the
  arithmetic ({overhead_1024:.1f} ms for the MLP) is gathering the presample
  from memory, scoring it in eight forward batches of 128 instead of one
  pass, and the step's loss and accuracy metrics, which the bare step does
  not compute.
- **No retracing**: each train step is traced in the first round and kept
  across `fit` calls, as `model.fit` keeps its train function.
- **Memory**: training holds the training arrays once more, in host memory,
  as `model.fit`'s input pipeline does.
- **XLA**: with `model.compile(..., jit_compile=True)` the whole step,
  scoring included, is compiled with XLA, as `model.fit` compiles its own.
- **Other backends**: the same step runs on JAX and PyTorch, where Keras's
  data adapter brings the candidates to the step; their rows below. PyTorch
  runs the step eagerly, as Keras runs its own there, so the scoring pass
  costs more than in a compiled step.

Timings vary by 10 to 20 % from one run to the next on a shared 2-core
machine; the ratios, taken within each round, vary less.

## Per backend

`model.fit` against `ImportanceTraining` (presample 256), MLP and CNN as
above, `steps_per_execution=1`.

{backend_table}

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


def render(results, versions, per_step_markdown, xla_markdown,
           time_to_accuracy_markdown, backend_markdown=""):
    """The whole page, as a string.

    Args:
        results: The per-step results (`run.per_step`), read for the
            machine and for the numbers quoted in the text.
        versions: The TensorFlow and Keras versions.
        per_step_markdown: The per-step tables without XLA.
        xla_markdown: The per-step tables with XLA.
        time_to_accuracy_markdown: The time-to-accuracy section, between its
            markers (`time_to_accuracy.section`).
        backend_markdown: The per-backend table.
    """
    machine = results["machine"]
    speed = results["mlp"]["speed"]
    step_ms = speed["step_ms"]
    findings = _FINDINGS.format(
        ratio_256=speed["ratio"]["importance_256"],
        arithmetic_256=step_ms["arithmetic_256"] / step_ms["fit"],
        ratio_spe8=speed["ratio"]["importance_256_spe8"],
        backend_table=backend_markdown,
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
        backend=versions.get("backend", "tensorflow"),
        backend_version=versions[versions.get("backend", "tensorflow")],
        keras=versions["keras"],
        load=", ".join(f"{value:.1f}" for value in machine["load_average"]),
    )
    return (
        intro
        + per_step_markdown
        + "\n\n### With XLA (`jit_compile=True`)\n\n"
        + xla_markdown.replace("### mlp", "#### mlp")
        + "\n"
        + findings
        + time_to_accuracy_markdown
        + "\n"
    )
