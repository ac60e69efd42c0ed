"""Run the benchmarks and print their markdown tables.

```
python benchmarks/run.py                 # time per step, trace counts, memory
python benchmarks/run.py --quick         # a smoke test of the first mode
python benchmarks/run.py --docs docs/benchmarks.md   # all of it, as a page
KERAS_BACKEND=jax python benchmarks/run.py --backend-rows   # one backend's rows
```

The results are also written as JSON (`--output`, by default next to this
file: `results.json`, `results_xla.json`, `results_backend_<backend>.json`,
with `_quick` added in quick mode). The page takes the rows of each backend
from the last `--backend-rows` run on it (TensorFlow's from the per-step
results), and its time-to-accuracy section from the run files of
`benchmarks/time_to_accuracy.py`, which measures it.
"""

import argparse
import datetime
import importlib
import json
import os
import platform
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if str(Path(__file__).resolve().parent.parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402

from benchmarks import memory, page, report, speed, time_to_accuracy, workloads  # noqa: E402

# (samples, rounds, steps per round, memory samples) of the per-step mode.
SETTINGS = {
    "full": {"mlp": (60000, 7, 40, 60000), "cnn": (60000, 7, 30, 60000)},
    "quick": {"mlp": (8192, 2, 8, 2048), "cnn": (8192, 1, 8, 2048)},
}
MEMORY_VARIANTS = {"full": workloads.VARIANTS, "quick": ("fit", "importance_256")}


def machine():
    """A description of the machine the benchmarks run on."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }


def per_step(models, mode, with_memory=True, jit_compile=False):
    """Run the per-step benchmark; return `(results, markdown)`."""
    results = {"machine": machine(), "mode": mode, "jit_compile": jit_compile}
    for name in models:
        num_samples, rounds, steps, memory_samples = SETTINGS[mode][name]
        result = {"speed": speed.measure(
            name, num_samples=num_samples, rounds=rounds, steps=steps,
            approximate_warmup=100 if mode == "full" else 5, jit_compile=jit_compile,
        )}
        if with_memory:
            result["memory"] = memory.measure(
                name, MEMORY_VARIANTS[mode], num_samples=memory_samples,
                steps=50 if mode == "full" else 5,
            )
        results[name] = result
    results["machine"]["load_average_end"] = os.getloadavg()
    return results, speed_tables(results)


def speed_tables(results):
    """The per-step tables of the models in `results`."""
    return "\n\n".join(
        report.speed_table(name, results[name]["speed"], results[name].get("memory"))
        for name in workloads.MODELS if name in results
    )


def versions():
    """The versions of Keras and of its backend that the benchmarks ran with."""
    backend = keras.backend.backend()
    module = importlib.import_module(backend)
    return {"backend": backend, backend: module.__version__, "keras": keras.__version__}


def backend_rows(mode):
    """`model.fit` against `ImportanceTraining` on the running backend, per model."""
    rows = {}
    for name in workloads.MODELS:
        num_samples, rounds, steps, _ = SETTINGS[mode][name]
        rows[name] = speed.measure_backend(name, num_samples, rounds, steps)
    return {"machine": machine(), "mode": mode, "models": rows}


def backend_results(here, per_step_results):
    """The per-backend rows of the page: TensorFlow's, then the other backends'."""
    rows = {"tensorflow": {
        name: {"step_ms": per_step_results[name]["speed"]["step_ms"],
               "ratio": per_step_results[name]["speed"]["ratio"]["importance_256"]}
        for name in workloads.MODELS if name in per_step_results
    }}
    for backend in ("jax", "torch"):
        path = here / f"results_backend_{backend}.json"
        if path.exists():
            rows[backend] = json.loads(path.read_text())["models"]
    return rows


def write_json(results, path):
    results["versions"] = versions()
    results["date"] = datetime.date.today().isoformat()
    path.write_text(json.dumps(results, indent=2) + "\n")


# The JSON files behind the page, next to this file.
PAGE_FILES = ("results.json", "results_xla.json")


def write_page(path, mode, measure=True):
    """Write the page `path` from new measurements (and their JSON files), or
    from the JSON files of the last measurements when `measure` is false."""
    here = Path(__file__).parent
    if measure:
        measured = (
            per_step(list(workloads.MODELS), mode)[0],
            per_step(["mlp"], mode, with_memory=False, jit_compile=True)[0],
        )
        for results, name in zip(measured, PAGE_FILES):
            write_json(results, here / name)
    results, xla = (json.loads((here / name).read_text()) for name in PAGE_FILES)
    path.write_text(page.render(
        results, results["versions"], speed_tables(results), speed_tables(xla),
        time_to_accuracy.section(time_to_accuracy.load_results(),
                                 time_to_accuracy.load_seed_readme()),
        report.backend_table(backend_results(here, results)),
    ))
    print(f"Wrote {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small, fast run")
    parser.add_argument("--models", nargs="+", choices=workloads.MODELS,
                        default=list(workloads.MODELS))
    parser.add_argument("--jit-compile", action="store_true",
                        help="compile every model with XLA (`compile(jit_compile=True)`)")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory runs")
    parser.add_argument("--output", type=Path, help="where to write the JSON results")
    parser.add_argument("--docs", type=Path, metavar="PAGE",
                        help="run every benchmark and write the markdown page PAGE")
    parser.add_argument("--from-json", action="store_true",
                        help="with --docs: write the page from the JSON files of "
                             "the last run, without measuring")
    parser.add_argument("--backend-rows", action="store_true",
                        help="time `model.fit` against `ImportanceTraining` on the "
                             "running Keras backend")
    parser.add_argument("--memory-child", choices=workloads.VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--samples", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.memory_child:
        memory.train_and_report(args.memory_child, args.models[0], args.samples, args.steps)
        return None
    mode = "quick" if args.quick else "full"
    if args.docs:
        write_page(args.docs, mode, measure=not args.from_json)
        return None
    if args.backend_rows:
        results = backend_rows(mode)
        markdown = report.backend_table({keras.backend.backend(): results["models"]})
        stem = f"results_backend_{keras.backend.backend()}"
    else:
        results, markdown = per_step(args.models, mode, with_memory=not args.no_memory,
                                     jit_compile=args.jit_compile)
        stem = "results_xla" if args.jit_compile else "results"
    if mode == "quick":
        stem += "_quick"
    write_json(results, args.output or Path(__file__).with_name(f"{stem}.json"))
    print(markdown)
    return results


if __name__ == "__main__":
    main()
