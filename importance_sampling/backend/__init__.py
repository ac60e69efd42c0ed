"""The parts of a step that differ per Keras backend, behind one interface.

`get()` returns the module of the running backend (`tensorflow`, `jax` or
`torch`), each of which provides:

- `make_train_step(model, step, draw)`: a function with the signature of
  Keras's `train_step` on that backend. With a `draw`, it draws the batch
  from the candidates that Keras hands it; without, the data are a batch
  already drawn on the host (a `step.Draw`).
- `gradient_norms(function, inputs)`: the norm of the gradient of
  `sum(function(inputs))` with respect to each row of `inputs`.
- `per_sample_gradient_norms(model, loss, x, y)`: the norm of each sample's
  loss gradient with respect to the trainable weights.
- `state_scope(model, args)`: a context in which the model's variables read
  the state of the running train function (what JAX's `fit` threads through
  its steps), for scoring on the host.
- `one_batch(batch)`: what Keras's train function takes to run on `batch`.
- `split_outputs(outputs)`: `(logs, rest)` of what the train function
  returned, and `join_outputs(logs, rest)` to put them back.
- `next_batch(args)`: the batch that Keras passed to the train function.
- `unchanged_outputs(logs, args)`: what the train function returns for a
  call that updates nothing, with `logs`.
- `shards(model)`: the number of parts (replicas or devices) that a batch
  is split over; `batch_size` and `presample` must be multiples of it.
- `processes()`: the number of processes that each feed their share of a
  batch (several machines on JAX).
- `array_source()`: a new source of candidates from arrays (see
  `candidates.HostArraySource`).
"""

import importlib

import keras

BACKENDS = ("tensorflow", "jax", "torch")


def get():
    """The backend module of the running Keras backend.

    Raises:
        ValueError: for a Keras backend the library does not support.
    """
    name = keras.backend.backend()
    if name not in BACKENDS:
        raise ValueError(
            f"Importance training runs on the Keras backends {BACKENDS}. "
            f"Received: KERAS_BACKEND={name!r}"
        )
    return importlib.import_module(f"importance_sampling.backend.{name}")
