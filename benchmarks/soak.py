"""Soak runs: resident memory over 100,000 training steps.

```
python benchmarks/soak.py                    # the soaks without results
python benchmarks/soak.py --only history --force
python benchmarks/soak.py --steps 2000       # a quick check, in a temp folder
python benchmarks/soak.py --docs             # rewrites docs/soak.md
```

Each soak (`SOAKS`) trains the `small_nn` model of the zoo on
`canevet-icml2016` in a process of its own and samples the resident memory
(`VmRSS`) of that process every `--every` steps: `ImportanceTraining` and
`ApproximateImportanceTraining` from their `fit` (one sample at the end of
every epoch of `--every` steps), and the `history` sampler through the
experiment command's `main`, sampled by a thread that reads its step (the
last line of its `clock.txt`), and once more when its training returns. A
run's samples are written to `benchmarks/results/soak/NAME.json` (skipped
when present; `--force` runs it again); `--docs` writes `docs/soak.md` from
those files only, so that a test can check the page against them.

A run is flat when, after the warm-up (the first `WARMUP` of its steps), the
largest resident memory is at most `TOLERANCE` above the smallest; the
change from the first sample after the warm-up to the last is then within
`TOLERANCE` too.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from unittest import mock

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import examples_page, memory  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "soak"
PAGE = ROOT / "docs" / "soak.md"
STEPS = 100_000
EVERY = 1_000
WARMUP = 0.1
TOLERANCE = 0.05
CANEVET_N = 256
BATCH_SIZE = 128
FORWARD_BATCH_SIZE = 1024
APPROXIMATE_PRESAMPLE = 512

# name: what the run trains with, as the page shows it.
SOAKS = {
    "importance": "`ImportanceTraining(model).fit` (presample 256, loss scores, k = 0.5)",
    "approximate": "`ApproximateImportanceTraining(model, presample="
                   f"{APPROXIMATE_PRESAMPLE}).fit` (LSTM loss predictor, k = 0.5)",
    "history": "`importance-sampling small_nn oracle-loss history predicted "
               "canevet-icml2016 OUTPUT_DIR` (re-scores the training set every 600 steps)",
}


def command_arguments(output_dir, steps):
    """The arguments of the experiment command of the `history` soak."""
    return [
        "small_nn", "oracle-loss", "history", "predicted", "canevet-icml2016",
        str(output_dir), "--train_for", str(steps),
        # Past the last step: the run never validates.
        "--validate_every", str(steps + 1),
        "--hyperparams",
        f"canevet_n=i{CANEVET_N};batch_size=i{BATCH_SIZE};"
        f"forward_batch_size=i{FORWARD_BATCH_SIZE}",
    ]


def _trainer(name, model):
    from importance_sampling.training import (
        ApproximateImportanceTraining,
        ImportanceTraining,
    )

    if name == "importance":
        return ImportanceTraining(model, forward_batch_size=FORWARD_BATCH_SIZE)
    return ApproximateImportanceTraining(model, presample=APPROXIMATE_PRESAMPLE)


def _rss_sample(step, start):
    return [step, time.perf_counter() - start, memory.status_mb("VmRSS")]


def fit_soak(name, steps, every):
    """Train soak `name` with `fit` for `steps` steps.

    Returns:
        A dict: `samples`, `[step, seconds, resident MiB]` at the end of
        every epoch of `every` steps, and `steps_done`, the optimizer's
        step count.
    """
    import keras

    from importance_sampling import models
    from importance_sampling.datasets import CanevetICML2016

    keras.utils.set_random_seed(0)
    x, y = CanevetICML2016(N=CANEVET_N, seed=0).train_data[:]
    model = models.small_nn(x.shape[1:], y.shape[1])
    samples, start = [], time.perf_counter()

    def sample(epoch, logs):
        samples.append(_rss_sample((epoch + 1) * every, start))

    _trainer(name, model).fit(
        x, y, batch_size=BATCH_SIZE, epochs=steps // every, steps_per_epoch=every,
        verbose=0, callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=sample)],
    )
    return {"samples": samples, "steps_done": int(model.optimizer.iterations.numpy())}


def last_step(clock):
    """The step of the last complete line of the command's `clock.txt`, or 0."""
    if not clock.exists():
        return 0
    offset = max(0, clock.stat().st_size - 256)
    with clock.open("rb") as file:
        file.seek(offset)
        lines = file.read().decode().split("\n")[:-1]
    complete = lines[1:] if offset else lines  # past a seek, the first may be cut
    return int(complete[-1].split()[0]) if complete else 0


def command_soak(steps, every, poll_seconds=0.05):
    """Run the `history` soak through the experiment command's `main`.

    A thread samples the resident memory whenever the command's step
    reaches a multiple of `every`; the command's `train` is wrapped to take
    the last sample when it returns, before `main` lets go of the run.

    Returns:
        A dict like `fit_soak`'s, `samples` at the steps the thread read.
    """
    from importance_sampling import experiment

    samples, start, stop = [], time.perf_counter(), threading.Event()
    due = every

    def watch(clock):
        nonlocal due
        while not stop.wait(poll_seconds):
            step = last_step(clock)
            if step >= due:
                samples.append(_rss_sample(step, start))
                due = (step // every + 1) * every

    def train_then_sample(args, *parts):
        clock = Path(args.output_dir) / "clock.txt"
        thread = threading.Thread(target=watch, args=(clock,), daemon=True)
        thread.start()
        try:
            train(args, *parts)
        finally:
            stop.set()
            thread.join()
        step = last_step(clock)
        if step >= due:
            samples.append(_rss_sample(step, start))

    train = experiment.train
    with tempfile.TemporaryDirectory() as output, \
            mock.patch.object(experiment, "train", train_then_sample):
        experiment.main(command_arguments(output, steps))
        steps_done = last_step(Path(output) / "clock.txt")
    return {"samples": samples, "steps_done": steps_done}


def soak(name, steps, every):
    """Run soak `name` in this process; return its `samples` and `steps_done`."""
    if name == "history":
        return command_soak(steps, every)
    return fit_soak(name, steps, every)


def _run_child(name, steps, every):
    """Run soak `name` in a process of its own (`soak.py --child NAME`)."""
    command = [sys.executable, __file__, "--child", name,
               "--steps", str(steps), "--every", str(every)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def summarize(samples, steps, warmup=WARMUP, tolerance=TOLERANCE):
    """Resident memory after the warm-up of the samples `[[step, seconds, mb], ...]`.

    Returns:
        A dict: `first_mb` and `last_mb` (the first sample after the
        warm-up and the last), `min_mb`, `max_mb`, `growth` (last over
        first, minus 1), `spread` (max over min, minus 1) and `flat`
        (`spread` at most `tolerance`).
    """
    after = [mb for step, _, mb in samples if step >= warmup * steps]
    if not after:
        raise ValueError(
            f"No sample after the warm-up of {warmup * steps:g} steps. Received: "
            f"samples up to step {samples[-1][0] if samples else None}"
        )
    spread = max(after) / min(after) - 1
    return {"first_mb": after[0], "last_mb": after[-1], "min_mb": min(after),
            "max_mb": max(after), "growth": after[-1] / after[0] - 1,
            "spread": spread, "flat": spread <= tolerance}


def run(name, steps, every, results, force=False):
    """Run soak `name` unless its results exist; return the results' path."""
    path = results / f"{name}.json"
    if path.exists() and not force:
        print(f"{name}: results present, skipped ({path})")
        return path
    print(f"{name}: {steps} steps", flush=True)
    start = time.perf_counter()
    measured = _run_child(name, steps, every)
    record = {"name": name, "steps": steps, "every": every, "warmup": WARMUP,
              "seconds": time.perf_counter() - start, **measured,
              "environment": examples_page.environment()}
    results.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1) + "\n")
    summary = summarize(record["samples"], steps)
    print(f"{name}: {summary['first_mb']:.1f} -> {summary['last_mb']:.1f} MiB, "
          f"spread {summary['spread']:.2%}, flat: {summary['flat']}", flush=True)
    return path


def load_results(results=RESULTS):
    """The stored records of the soaks, by name, in the order of `SOAKS`."""
    paths = {name: results / f"{name}.json" for name in SOAKS}
    return {name: json.loads(path.read_text()) for name, path in paths.items()
            if path.exists()}


def page(records):
    """The Markdown of `docs/soak.md` from the soak records, by name."""
    lines = [
        "# Soak runs",
        "",
        "Does training hold its memory steady over a long run? Each soak trains "
        "the `small_nn` model of `importance_sampling.models` (2-40-40-2, tanh) on "
        f"`canevet-icml2016` with a {CANEVET_N}x{CANEVET_N} grid (two thirds of "
        f"its {CANEVET_N ** 2:,} points for training), batch {BATCH_SIZE}, Adam "
        f"at 0.001, for {STEPS:,} steps, in a process of its own, and reads that "
        f"process's resident memory (`VmRSS`) every {EVERY:,} steps. After a "
        f"warm-up of the first {WARMUP:.0%} of the steps, a run is flat when its "
        f"largest resident memory is at most {TOLERANCE:.0%} above its smallest; "
        "its change from the first sample after the warm-up to the last is then "
        "within that bound too.",
        "",
        f"The `fit` runs have epochs of {EVERY:,} steps and are sampled at the end "
        "of each. The `history` run calls `importance_sampling.experiment.main`, "
        f"the command's entry point, with `--train_for {STEPS}`, no validation "
        "and the hyperparameters "
        f"`canevet_n=i{CANEVET_N};batch_size=i{BATCH_SIZE};"
        f"forward_batch_size=i{FORWARD_BATCH_SIZE}`; a thread samples it when the "
        "step in its `clock.txt` reaches the next multiple of "
        f"{EVERY:,}, and after its last step. Scoring forward passes use batches "
        f"of {FORWARD_BATCH_SIZE}. `ApproximateImportanceTraining` runs with a "
        f"presample of {APPROXIMATE_PRESAMPLE} instead of its default 2048, which "
        "keeps the run's length within reach: its LSTM predictor scores the whole "
        "presample at every step. The time column is the wall-clock time of each "
        "run.",
        "",
        "```",
        "python benchmarks/soak.py          # the runs without results",
        "python benchmarks/soak.py --docs   # this page, from the results",
        "cd tests && python -m pytest -q -m slow test_soak.py   # runs them and checks flatness",
        "```",
        "",
        "Each run keeps its samples in `benchmarks/results/soak/NAME.json` and is "
        "skipped when that file exists (`--force` runs it again, `--only NAME` "
        "runs one); the test suite leaves the slow test out by default.",
        "",
        "| run | trains with | steps | after warm-up | at the end | min - max "
        "| growth | spread | flat | time |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | :---: | ---: |",
    ]
    for name, description in SOAKS.items():
        if name not in records:
            lines.append(f"| {name} | {description} | not measured | | | | | | | |")
            continue
        record = records[name]
        s = summarize(record["samples"], record["steps"], record["warmup"])
        lines.append(
            f"| {name} | {description} | {record['steps_done']:,} | "
            f"{s['first_mb']:.1f} MiB | {s['last_mb']:.1f} MiB | "
            f"{s['min_mb']:.1f} - {s['max_mb']:.1f} MiB | {s['growth']:+.2%} | "
            f"{s['spread']:.2%} | {'yes' if s['flat'] else '**no**'} | "
            f"{record['seconds'] / 60:.0f} min |"
        )
    lines += _series_table(records)
    environments = {json.dumps(r["environment"], sort_keys=True) for r in records.values()}
    for environment in map(json.loads, sorted(environments)):
        lines += ["", f"Measured on {environment['cpus']} CPU cores "
                  f"({environment['machine']}) without a GPU, Python "
                  f"{environment['python']}, TensorFlow {environment['tensorflow']}, "
                  f"Keras {environment['keras']}, with other work sharing the cores."]
    return "\n".join(lines) + "\n"


def _series_table(records):
    """Resident memory every tenth of the runs (the first sample at or after it)."""
    if not records:
        return []
    names = list(records)
    lines = ["", "Resident memory (MiB) along the runs:", "",
             "| step | " + " | ".join(names) + " |",
             "| ---: |" + " ---: |" * len(names)]
    tenth = max(r["steps"] for r in records.values()) // 10
    for step in range(tenth, 10 * tenth + 1, tenth):
        cells = (_memory_at(records[name]["samples"], step) for name in names)
        lines.append(f"| {step:,} | " + " | ".join(cells) + " |")
    return lines


def _memory_at(samples, step):
    """The resident MiB of the first sample at or after `step`, or `""`."""
    return next((f"{mb:.1f}" for s, _, mb in samples if s >= step), "")


def results_dir(steps):
    """`RESULTS` for the full soaks, a temporary folder for other step counts."""
    return RESULTS if steps == STEPS else Path(tempfile.gettempdir()) / f"soak_{steps}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(SOAKS), help="run this soak only")
    parser.add_argument("--force", action="store_true", help="run even with results present")
    parser.add_argument("--steps", type=int, default=STEPS,
                        help=f"steps per run (default {STEPS}; others go to a temp folder)")
    parser.add_argument("--every", type=int, default=EVERY,
                        help=f"steps between two memory samples (default {EVERY})")
    parser.add_argument("--docs", action="store_true", help="rewrite docs/soak.md")
    parser.add_argument("--output", type=Path,
                        help="folder of the results (default: benchmarks/results/soak "
                             f"for {STEPS} steps, a temporary folder otherwise)")
    parser.add_argument("--child", choices=list(SOAKS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.every < 1 or args.steps % args.every:
        parser.error("--steps must be a multiple of --every, which must be at least "
                     f"1. Received: --steps {args.steps}, --every {args.every}")
    if args.child:
        print(json.dumps(soak(args.child, args.steps, args.every)))
        return
    if args.docs:
        PAGE.write_text(page(load_results()))
        print(f"wrote {PAGE}")
        return
    for name in [args.only] if args.only else SOAKS:
        run(name, args.steps, args.every, args.output or results_dir(args.steps), args.force)


if __name__ == "__main__":
    main()
