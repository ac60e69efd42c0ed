"""Importance training under `keras.distribution` on JAX (this file runs on JAX only).

- Two CPU devices in one process (`XLA_FLAGS`), under `DataParallel`: the
  step sees all the candidates of a step and draws once; one step equals a
  single-device weighted SGD step on the drawn items.
- Two processes on 127.0.0.1 (gloo collectives), `DataParallel` with
  `auto_shard_dataset=False`: each process feeds its share of the candidates,
  and both end with the same weights.

The devices and processes must be set up before JAX starts, so the runs
happen in subprocesses, which save what they observed; the tests check it
here. What a step drew is recorded by wrapping `ImportanceDraw.__call__`
with `jax.debug.callback`, which JAX calls once per step, in process 0, with
the global values.
"""

import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import (
    assert_single_device_step,
    blobs,
    proportional_positions,
    sgd_classifier,
    sparse_losses,
)


if keras.backend.backend() != "jax":
    raise ImportError(
        "test_distributed_jax.py runs under KERAS_BACKEND=jax only; "
        "tests/backends/conftest.py leaves it out on the other backends"
    )

TESTS = Path(__file__).resolve().parent.parent
LEARNING_RATE = 0.5
BATCH, PRESAMPLE = 8, 32


def _data():
    x, y = blobs(256, num_classes=3, seed=6)
    sample_weight = np.random.default_rng(4).uniform(0.5, 1.5, len(x)).astype("float32")
    return x, y, sample_weight


def _record_draws(records):
    """Wrap `ImportanceDraw.__call__` to append what each step drew to `records`."""
    import jax

    from importance_sampling import step as step_module

    original = step_module.ImportanceDraw.__call__

    def recording(self, data, replica_id=0, num_replicas=1):
        drawn = original(self, data, replica_id, num_replicas)

        def record(candidates, *values):
            records.append((
                [np.asarray(c) for c in candidates], [np.asarray(v) for v in values]
            ))

        jax.debug.callback(record, data, drawn.x, drawn.y, drawn.weights,
                           drawn.metric_weights, drawn.sample_weight)
        return drawn

    step_module.ImportanceDraw.__call__ = recording


def _run_child(function, *args, env=None):
    code = (f"import sys; sys.path.insert(0, {str(TESTS)!r}); "
            f"from backends import test_distributed_jax as t; t.{function}(*{args!r})")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", **(env or {}))
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=TESTS,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process, timeout):
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        pytest.fail(f"timed out after {timeout} s:\n{stderr[-5000:]}")
    assert process.returncode == 0, stderr[-5000:]


# Two devices in one process


def _data_parallel_child(out_path):
    import jax

    from importance_sampling.step import StepSeed
    from importance_sampling.training import ImportanceTraining

    assert len(jax.devices()) == 2, jax.devices()
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    x, y, sample_weight = _data()
    records = []
    _record_draws(records)
    keras.utils.set_random_seed(2)
    model = sgd_classifier(LEARNING_RATE)
    initial = model.get_weights()
    trainer = ImportanceTraining(model, k=1.0, presample=PRESAMPLE)
    history = trainer.fit(x, y, sample_weight=sample_weight, batch_size=BATCH, epochs=1,
                          steps_per_epoch=1, verbose=0)
    # The uniform variates of the first step, from the seed and step number 0.
    variates = keras.random.uniform([BATCH], seed=StepSeed(trainer._seed, 0))
    kernel = model.trainable_variables[0].value
    with open(out_path, "wb") as file:
        pickle.dump(dict(
            initial=initial, after=model.get_weights(), loss=history.history["loss"][0],
            records=records, variates=np.asarray(variates),
            replicated_over=len(kernel.sharding.device_set),
        ), file)


@pytest.fixture(scope="module")
def data_parallel(tmp_path_factory):
    out_path = tmp_path_factory.mktemp("data_parallel") / "results.pkl"
    process = _run_child("_data_parallel_child", str(out_path),
                         env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    _finish(process, timeout=240)
    with open(out_path, "rb") as file:
        return pickle.load(file)


def test_data_parallel_step_draws_once_from_all_candidates(data_parallel):
    run = data_parallel
    assert run["replicated_over"] == 2
    (record,) = run["records"]  # one draw for the step, not one per device
    (candidates_x, candidates_y, candidates_w), (drawn_x, drawn_y, weights,
                                                 metric_weights, weight_b) = record
    assert len(candidates_x) == PRESAMPLE and len(drawn_x) == BATCH
    model = sgd_classifier(LEARNING_RATE)
    model.set_weights(run["initial"])
    scores = sparse_losses(model, candidates_x, candidates_y)
    positions = proportional_positions(scores, run["variates"])
    np.testing.assert_array_equal(drawn_x, candidates_x[positions])
    np.testing.assert_array_equal(drawn_y, candidates_y[positions])
    np.testing.assert_array_equal(weight_b, candidates_w[positions])
    # The candidates are rows of the training set with their user weights.
    x, y, sample_weight = _data()
    for row, label, weight in zip(candidates_x, candidates_y, candidates_w):
        (index,) = np.nonzero(np.all(x == row, axis=1))
        assert len(index) >= 1, "a candidate is not a training row"
        assert y[index[0]] == label and sample_weight[index[0]] == weight
    # k=1: the weight of an item is 1 / (B p_i), p_i its probability among
    # all B candidates.
    expected = scores.mean() / scores[positions]
    np.testing.assert_allclose(metric_weights, expected, rtol=1e-4)
    np.testing.assert_allclose(weights[:, 0], expected, rtol=1e-4)


def test_data_parallel_step_equals_a_single_device_weighted_step(data_parallel):
    run = data_parallel
    (record,) = run["records"]
    assert_single_device_step(run, record[1], LEARNING_RATE)


# Two processes


PROCESS_STEPS = 3


def _process_child(process_id, port, out_path):
    import jax

    from importance_sampling import candidates as candidates_module
    from importance_sampling.training import ImportanceTraining

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # Also seeds every process alike (`initialize_rng`), as the model's
    # initial weights and the seed of the draws must be.
    keras.distribution.initialize(f"127.0.0.1:{port}", num_processes=2,
                                  process_id=process_id)
    assert jax.process_count() == 2 and len(jax.devices()) == 2
    keras.distribution.set_distribution(keras.distribution.DataParallel(
        devices=jax.devices(), auto_shard_dataset=False
    ))
    x, y, _ = _data()
    records, fed = [], []
    _record_draws(records)
    original_getitem = candidates_module.ArrayCandidates.__getitem__

    def feeding(self, step):
        batch = original_getitem(self, step)
        fed.append(self.indices(step))
        return batch

    candidates_module.ArrayCandidates.__getitem__ = feeding
    results = {}
    # Each process gives `fit` its own shard, then all of the arrays.
    for name, rows in [("shards", slice(process_id, None, 2)), ("whole", slice(None))]:
        records.clear()
        fed.clear()
        model = sgd_classifier(LEARNING_RATE)
        initial = model.get_weights()
        trainer = ImportanceTraining(model, presample=PRESAMPLE)
        history = trainer.fit(x[rows], y[rows], batch_size=BATCH, epochs=1,
                              steps_per_epoch=PROCESS_STEPS, verbose=0)
        results[name] = dict(
            initial=initial, after=model.get_weights(), history=history.history,
            records=list(records), fed=list(fed),
            iterations=int(keras.ops.convert_to_numpy(model.optimizer.iterations)),
        )
    with open(out_path, "wb") as file:
        pickle.dump(results, file)


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_processes")
    port = _free_port()
    processes = [_run_child("_process_child", i, port, str(folder / f"{i}.pkl"))
                 for i in range(2)]
    for process in processes:
        _finish(process, timeout=240)
    results = []
    for i in range(2):
        with open(folder / f"{i}.pkl", "rb") as file:
            results.append(pickle.load(file))
    return results


@pytest.mark.parametrize("arrays", ["shards", "whole"])
def test_two_processes_end_with_the_same_weights(two_processes, arrays):
    first, second = (results[arrays] for results in two_processes)
    assert first["iterations"] == second["iterations"] == PROCESS_STEPS
    for a, b in zip(first["initial"], second["initial"]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first["after"], second["after"]):
        np.testing.assert_array_equal(a, b)
    assert first["history"] == second["history"]
    assert np.all(np.isfinite(first["history"]["loss"]))
    assert any(not np.array_equal(a, i) for a, i in zip(first["after"], first["initial"]))


@pytest.mark.parametrize("arrays", ["shards", "whole"])
def test_each_process_feeds_its_share_of_the_global_presample(two_processes, arrays):
    x, _, _ = _data()
    shards = [x[0::2], x[1::2]] if arrays == "shards" else [x, x]
    fed = [results[arrays]["fed"] for results in two_processes]
    for own in fed:
        # Keras may read a batch ahead: at least one batch a step.
        assert len(own) >= PROCESS_STEPS
        assert all(len(indices) == PRESAMPLE // 2 for indices in own)
    # The processes draw their candidates with streams of their own.
    assert not np.array_equal(fed[0][0], fed[1][0])
    # The step (recorded in process 0) sees both shares, and draws once.
    records = two_processes[0][arrays]["records"]
    assert len(records) == PROCESS_STEPS
    assert two_processes[1][arrays]["records"] == []
    for step, ((candidates_x, _, _), (drawn_x, *_)) in enumerate(records):
        assert len(candidates_x) == PRESAMPLE and len(drawn_x) == BATCH
        for process, rows in enumerate(np.split(candidates_x, 2)):
            np.testing.assert_array_equal(rows, shards[process][fed[process][step]])
