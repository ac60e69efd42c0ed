"""Peak resident memory of a training run, each run in its own process.

The peak is taken over the training alone: the kernel's high-water mark is
reset (Linux `/proc/self/clear_refs`) once the data and the model exist, so
the peaks of the start-up (importing TensorFlow, generating the data) do not
hide what training adds. The data stays resident, so it is counted.
"""

import gc
import json
import subprocess
import sys
from pathlib import Path

from benchmarks import workloads

RUN = Path(__file__).with_name("run.py")


def _reset_peak():
    Path("/proc/self/clear_refs").write_text("5")


def status_mb(field, pid="self"):
    """The memory `field` (e.g. `"VmRSS"`) of process `pid`, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"No `{field}` in /proc/{pid}/status: memory needs Linux.")


def peak_rss_mb():
    """Peak resident memory of this process since the last reset, in MiB."""
    return status_mb("VmHWM")


def train_and_report(variant, model_name, num_samples, steps, batch_size=128):
    """Train `variant` for `steps` steps and print `{"peak_rss_mb": ...}`.

    This is what the child process runs (`run.py --memory-child VARIANT`).
    """
    x, y = workloads.synthetic_data(model_name, num_samples)
    trainer = workloads.make_trainer(variant, workloads.build_model(model_name))
    gc.collect()
    _reset_peak()
    trainer.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, steps_per_epoch=steps)
    print(json.dumps({"peak_rss_mb": peak_rss_mb()}))


def measure(model_name, variants, num_samples=60000, steps=50):
    """Peak resident memory of each variant, measured in a fresh process.

    Args:
        model_name: `"mlp"` or `"cnn"`.
        variants: The variants to run; `"fit"` must be one of them.
        num_samples: Size of the synthetic training set. Defaults to `60000`.
        steps: Train steps per run. Defaults to `50`.

    Returns:
        A dict with `peak_rss_mb` and `ratio` (to `"fit"`), by variant.
    """
    peaks = {}
    for variant in variants:
        command = [sys.executable, str(RUN), "--memory-child", variant,
                   "--models", model_name, "--samples", str(num_samples),
                   "--steps", str(steps)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        peaks[variant] = json.loads(output.strip().splitlines()[-1])["peak_rss_mb"]
    return {
        "peak_rss_mb": peaks,
        "ratio": {variant: peak / peaks["fit"] for variant, peak in peaks.items()},
    }
