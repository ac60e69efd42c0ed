"""Time per optimizer step, measured in one process with interleaved rounds.

Every variant trains its own copy of the model. The variants run in turns
(`rounds` rounds of `steps` steps each) so that a slow spell of the machine
hits all of them alike; a ratio is taken within each round and the median
over the rounds is reported.
"""

import time

import keras
import numpy as np

from benchmarks import workloads
from importance_sampling.utils.losses import per_sample_loss_function

# Steps at the start of every `fit` call that are left out of the timings.
SKIPPED_STEPS = 2


class _StepClock(keras.callbacks.Callback):
    """Record the time at the end of every call of the train function.

    A call runs `steps_per_execution` steps, among which its time is shared.
    """

    def __init__(self, steps_per_execution=1):
        super().__init__()
        self.times = []
        self.steps_per_execution = steps_per_execution

    def on_epoch_begin(self, epoch, logs=None):
        self.times.append([])

    def on_train_batch_end(self, batch, logs=None):
        self.times[-1].append(time.perf_counter())

    def step_times(self, epoch=-1):
        """Seconds per step between consecutive calls, without the first calls."""
        return np.diff(self.times[epoch])[SKIPPED_STEPS:] / self.steps_per_execution


class _TraceCounter(keras.callbacks.Callback):
    """Record the trace counts of a trainer at the end of every epoch."""

    def __init__(self, trainer):
        super().__init__()
        self.trainer = trainer
        self.counts = []

    def on_epoch_end(self, epoch, logs=None):
        self.counts.append(workloads.trace_counts(self.trainer))


def _fit_steps(trainer, x, y, steps, batch_size, steps_per_execution=1):
    """Train for about `steps` steps; return the per-step times in seconds."""
    clock = _StepClock(steps_per_execution)
    calls = max(1, steps // steps_per_execution) + SKIPPED_STEPS + 1
    trainer.fit(x, y, batch_size=batch_size, epochs=1, verbose=0,
                steps_per_epoch=calls * steps_per_execution, callbacks=[clock])
    return clock.step_times()


class _Arithmetic:
    """The bare computations of one importance-sampling step, compiled.

    `forward` computes the per-sample losses of the presample in one call;
    `step` takes one weighted optimizer step without metrics. Their sum is a
    lower bound of an importance-sampling step.

    Each call reads other data, drawn at random from the training set as in
    training: repeated calls on one tensor would find it in the CPU caches
    and understate the cost (by half for a presample of 1024 MLP inputs).
    The data are made into tensors beforehand, so the host's gathering and
    copying count as the loop's overhead, not as arithmetic.
    """

    # Distinct presamples and batches cycled through, enough to outgrow the
    # CPU caches (16 presamples of 1024 MLP inputs take 51 MB).
    POOL_SIZE = 16

    def __init__(self, model, x, y, presample, batch_size, seed=0):
        import tensorflow as tf

        self.model = model
        self.loss_fn = per_sample_loss_function(model.loss)
        rng = np.random.default_rng(seed)

        def draws(count):
            for _ in range(self.POOL_SIZE):
                idxs = rng.integers(0, len(x), size=count)
                yield tf.constant(x[idxs]), tf.constant(y[idxs])

        self.presamples = list(draws(presample))
        self.batches = [(bx, by, tf.ones(batch_size)) for bx, by in draws(batch_size)]
        # Compiled as the library compiles them: XLA for the step only.
        self.forward = tf.function(self._forward)
        self.step = tf.function(self._step, jit_compile=model.jit_compile)

    def _forward(self, x, y):
        return self.loss_fn(y, self.model(x, training=False))

    def _step(self, x, y, w):
        import tensorflow as tf

        variables = self.model.trainable_variables
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(w * self.loss_fn(y, self.model(x, training=True)))
        self.model.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    def time(self, steps):
        """Per-call times (seconds) of the forward and of the step."""
        times = {"forward": [], "step": []}
        for name, function, pool in (("forward", self.forward, self.presamples),
                                     ("step", self.step, self.batches)):
            for call in range(steps + SKIPPED_STEPS):
                args = pool[call % len(pool)]
                start = time.perf_counter()
                function(*args).numpy()
                times[name].append(time.perf_counter() - start)
        return {name: np.asarray(t[SKIPPED_STEPS:]) for name, t in times.items()}


def _median_ms(times):
    return float(np.median(np.concatenate(times)) * 1000)


def measure(model_name, num_samples=60000, rounds=5, steps=30, batch_size=128,
            approximate_warmup=100, jit_compile=False):
    """Median time per step of every variant, their ratios and trace counts.

    `model.fit` and `ImportanceTraining` (presample 256) also run with
    `steps_per_execution=8` (the `_spe8` variants), each compared with the
    other.

    Args:
        model_name: `"mlp"` or `"cnn"`.
        num_samples: Size of the synthetic training set. Defaults to `60000`.
        rounds: Number of interleaved rounds. Defaults to `5`.
        steps: Timed steps per variant and round. Defaults to `30`.
        batch_size: Defaults to `128`.
        approximate_warmup: Least number of steps of the untimed first
            epoch of `ApproximateImportanceTraining`, which must cover its
            uniform warm-up for the timed epoch to sample by importance.
            Defaults to `100` (the warm-up of its `LSTMSampler`).
        jit_compile: Compile every model with XLA. Defaults to `False`.

    Returns:
        A dict with `step_ms` (median ms per step by variant and for the
        arithmetic parts), `ratio` (medians over the rounds of the per-round
        ratios named in the table) and `trace_counts` (`first_round` and
        `last_round`, by variant).
    """
    x, y = workloads.synthetic_data(model_name, num_samples)

    def build(steps_per_execution=1):
        return workloads.build_model(model_name, jit_compile=jit_compile,
                                     steps_per_execution=steps_per_execution)

    interleaved = [v for v in workloads.VARIANTS if v != "approximate"]
    interleaved += list(workloads.SPE8_VARIANTS)
    trainers = {
        variant: workloads.make_trainer(
            variant, build(workloads.steps_per_execution(variant))
        )
        for variant in interleaved
    }
    arithmetic = {
        presample: _Arithmetic(build(), x, y, presample, batch_size)
        for presample in (256, 1024)
    }
    times = {name: [] for name in interleaved}
    times.update({f"{part}_{p}": [] for p in arithmetic for part in ("forward", "step")})
    ratios = {"importance_256": [], "importance_256_spe8": [],
              "importance_256_arithmetic": [], "importance_1024_arithmetic": []}
    traces = {}
    for round_ in range(rounds):
        for variant, trainer in trainers.items():
            times[variant].append(_fit_steps(
                trainer, x, y, steps, batch_size, workloads.steps_per_execution(variant)
            ))
        for presample, parts in arithmetic.items():
            for part, part_times in parts.time(steps).items():
                times[f"{part}_{presample}"].append(part_times)
        if round_ == 0:
            traces["first_round"] = {v: workloads.trace_counts(t) for v, t in trainers.items()}
        latest = {name: float(np.median(t[-1])) for name, t in times.items()}
        ratios["importance_256"].append(latest["importance_256"] / latest["fit"])
        ratios["importance_256_spe8"].append(
            latest["importance_256_spe8"] / latest["fit_spe8"]
        )
        for presample in arithmetic:
            ratios[f"importance_{presample}_arithmetic"].append(
                latest[f"importance_{presample}"]
                / (latest[f"forward_{presample}"] + latest[f"step_{presample}"])
            )
    traces["last_round"] = {v: workloads.trace_counts(t) for v, t in trainers.items()}

    # Its sampler lives for one `fit` call: a first epoch covers the uniform
    # warm-up, the second one is timed.
    approximate = workloads.make_trainer("approximate", build())
    traces_after_warmup = _TraceCounter(approximate)
    clock = _StepClock()
    approximate.fit(x, y, batch_size=batch_size, epochs=2, verbose=0,
                    steps_per_epoch=max(approximate_warmup, steps * rounds) + SKIPPED_STEPS + 1,
                    callbacks=[clock, traces_after_warmup])
    times["approximate"] = [clock.step_times()]
    traces["first_round"]["approximate"] = traces_after_warmup.counts[0]
    traces["last_round"]["approximate"] = traces_after_warmup.counts[1]

    step_ms = {name: _median_ms(t) for name, t in times.items()}
    for presample in arithmetic:
        step_ms[f"arithmetic_{presample}"] = (
            step_ms[f"forward_{presample}"] + step_ms[f"step_{presample}"]
        )
    ratios = {name: float(np.median(values)) for name, values in ratios.items()}
    return {"step_ms": step_ms, "ratio": ratios, "trace_counts": traces}


def measure_backend(model_name, num_samples=60000, rounds=5, steps=30, batch_size=128):
    """`model.fit` against `ImportanceTraining` (presample 256) on the running backend.

    Returns:
        A dict with `step_ms` (median ms per step of `fit` and
        `importance_256`) and `ratio` (the median over the interleaved rounds
        of the per-round ratio).
    """
    x, y = workloads.synthetic_data(model_name, num_samples)
    trainers = {variant: workloads.make_trainer(variant, workloads.build_model(model_name))
                for variant in ("fit", "importance_256")}
    times = {variant: [] for variant in trainers}
    ratios = []
    for _ in range(rounds):
        for variant, trainer in trainers.items():
            times[variant].append(_fit_steps(trainer, x, y, steps, batch_size))
        ratios.append(np.median(times["importance_256"][-1]) / np.median(times["fit"][-1]))
    return {"step_ms": {variant: _median_ms(t) for variant, t in times.items()},
            "ratio": float(np.median(ratios))}
