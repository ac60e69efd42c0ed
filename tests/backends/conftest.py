"""What the backend-neutral tests collect on the running backend."""

import keras

# `keras.distribution` over several devices and processes: JAX only.
collect_ignore = [] if keras.backend.backend() == "jax" else ["test_distributed_jax.py"]
