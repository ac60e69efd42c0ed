"""The backend-neutral tests: the same subset passes on every Keras backend.

These modules import no TensorFlow (nor does `tests/conftest.py`; the rest
of `tests/` needs it): their inputs are NumPy arrays, `keras.utils.PyDataset`s,
Python generators and, on PyTorch, a `torch.utils.data.DataLoader`, and their
expectations are computed by hand with NumPy. Run them once per backend, from
the repository root, in an environment with that backend and the package
installed with its `test-backends` extra:

    pip install -e ".[tensorflow,test-backends]"
    KERAS_BACKEND=tensorflow python -m pytest -q tests/backends

    pip install -e ".[jax,test-backends]"
    KERAS_BACKEND=jax python -m pytest -q tests/backends

    pip install -e ".[torch,test-backends]"
    KERAS_BACKEND=torch python -m pytest -q tests/backends

Each run takes one to two minutes on two CPU cores (on JAX, `tests/conftest.py`
turns on JAX's compilation cache for the session, so that the steps of the
tests' identical little models compile once). `conftest.py` here leaves out
the modules of one backend (`test_distributed_jax.py`) on the others.
"""
