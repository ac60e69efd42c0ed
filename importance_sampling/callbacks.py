"""Keras callbacks for the training classes.

```python
from importance_sampling.callbacks import BackupAndRestore

training = ApproximateImportanceTraining(model)
training.fit(x, y, epochs=10, callbacks=[BackupAndRestore(training, "/tmp/backup")])
```
"""

import io
import json

import keras
import numpy as np

from importance_sampling.keras_internals import file_utils

STATE_FILE = "importance_state.npz"
"""The file of the sampling state in the `backup_dir` of `BackupAndRestore`."""

# The entries of the file besides the arrays of the state.
_STRUCTURE = "structure"
_METADATA = "keras_metadata"
_ARRAY = "__array__"


class BackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` that also backs up the state of the sampling.

    Keras's callback backs up the model's weights, the optimizer's state
    and the epoch. The sampling of a training class has state that they
    do not hold, `training.get_state()`: the host sampler's scores,
    histories and loss predictor, the moving averages of the smoothing and
    of `tau`, the recorded losses of `InfoBatchTraining` and the states of
    the random generators. Nor do they hold the states of the model's
    random seeds (those of its `Dropout` layers, say). Whenever Keras
    writes its backup, this callback writes both to `importance_state.npz`
    in `backup_dir`; when Keras restores the model at the start of `fit`,
    it restores the seeds and hands the sampling state to
    `training.set_state()`; and Keras deletes the file with its backup at
    the end of a training that completes.

    Keras restarts an interrupted epoch from its beginning. A run resumed
    from a backup of an epoch's end (`save_freq="epoch"`) trains on as the
    uninterrupted run would: to float precision the same weights when the
    run is deterministic (`keras.utils.set_random_seed()` called before the
    model and the training object are made, and, on TensorFlow,
    `tf.config.experimental.enable_op_determinism()`). On PyTorch, Keras
    draws the masks of a `Dropout` without a `seed` from PyTorch's global
    generator, which no backup holds: give it a `seed`. A backup in the
    middle of an epoch (an integer `save_freq`) restarts that epoch from
    weights that have already trained on part of it, as with Keras's
    callback.

    Args:
        training: The training object whose `fit` gets the callback, e.g.
            `ImportanceTraining(model)`.
        backup_dir: The directory of the backup, as for Keras's callback:
            it holds this run's backup only.
        save_freq: `"epoch"` or a number of steps, as for Keras's callback.
            Defaults to `"epoch"`.
        double_checkpoint: Also keep the previous backup, as for Keras's
            callback. Defaults to `False`.
        delete_checkpoint: Delete the backup at the end of the training.
            Defaults to `True`.

    Raises:
        ValueError: at the start of `fit`, when `backup_dir` holds a backup
            of the model without the sampling state that goes with it (a
            backup of Keras's own callback, say).

    Example:

    ```python
    training = ImportanceTraining(model)
    backup = BackupAndRestore(training, "/tmp/backup")
    training.fit(x, y, epochs=10, callbacks=[backup])  # interrupted
    training.fit(x, y, epochs=10, callbacks=[backup])  # resumes
    ```
    """

    def __init__(self, training, backup_dir, save_freq="epoch", double_checkpoint=False,
                 delete_checkpoint=True):
        super().__init__(backup_dir, save_freq=save_freq, double_checkpoint=double_checkpoint,
                         delete_checkpoint=delete_checkpoint)
        self.training = training
        self._state_path = file_utils.join(backup_dir, STATE_FILE)
        self._prev_state_path = f"{self._state_path}.bkp"

    def _save_model(self):
        if self.double_checkpoint and file_utils.exists(self._state_path):
            file_utils.copy(self._state_path, self._prev_state_path)
        super()._save_model()
        state = {
            "training": self.training.get_state(),
            "seeds": [keras.ops.convert_to_numpy(v) for v in _seed_states(self.model)],
        }
        _write_state(self._state_path, state, self._keras_metadata())

    def _load_model(self):
        super()._load_model()
        if file_utils.exists(self._training_metadata_path):
            state = self._state_of_backup()
            for variable, value in zip(_seed_states(self.model), state["seeds"]):
                variable.assign(value)
            self.training.set_state(state["training"])

    def _keras_metadata(self):
        """The text of the epoch (and step) file of Keras's backup."""
        with file_utils.File(self._training_metadata_path, "r") as file:
            return file.read()

    def _state_of_backup(self):
        """The sampling state written with the backup that Keras restores.

        It is the latest, or the previous one after Keras fell back to its
        previous backup (`double_checkpoint=True`).
        """
        metadata = self._keras_metadata()
        for path in (self._state_path, self._prev_state_path):
            if file_utils.exists(path):
                state, saved_with = _read_state(path)
                if saved_with == metadata:
                    return state
        raise ValueError(
            f"The backup in `backup_dir` has no sampling state of its epoch: "
            f"{STATE_FILE} is missing or was written with another backup (one "
            f"of `keras.callbacks.BackupAndRestore`?). Received: "
            f"backup_dir={self.backup_dir!r}, with a backup of {metadata}"
        )


def _seed_states(model):
    """The variables of `model` that are not weights: the states of its random seeds."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def _write_state(path, state, metadata):
    """Write a state of `get_state()` to a NumPy `.npz` file.

    The arrays are entries of the file; the structure around them and the
    other values (numbers, strings, lists, dicts with string keys) are JSON
    text, so that `_read_state` loads the file without pickle.

    Args:
        path: The path of the file.
        state: A dict of NumPy arrays, numbers, strings, lists and dicts.
        metadata: A string kept with the state.
    """
    arrays = {}
    structure = json.dumps(_encode(state, arrays))
    buffer = io.BytesIO()
    np.savez(buffer, **{_STRUCTURE: np.array(structure), _METADATA: np.array(metadata)},
             **arrays)
    with file_utils.File(path, "wb") as file:
        file.write(buffer.getvalue())


def _read_state(path):
    """Read a file of `_write_state`.

    Returns:
        A tuple `(state, metadata)`.
    """
    with file_utils.File(path, "rb") as file:
        buffer = io.BytesIO(file.read())
    with np.load(buffer, allow_pickle=False) as entries:
        arrays = {name: entries[name] for name in entries.files}
    structure = json.loads(str(arrays.pop(_STRUCTURE)))
    return _decode(structure, arrays), str(arrays.pop(_METADATA))


def _encode(value, arrays):
    """`value` with its arrays moved to `arrays` and replaced by their names."""
    if isinstance(value, dict):
        return {key: _encode(item, arrays) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(item, arrays) for item in value]
    if isinstance(value, np.ndarray):
        name = f"array_{len(arrays)}"
        arrays[name] = value
        return {_ARRAY: name}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode(value, arrays):
    if isinstance(value, dict):
        if set(value) == {_ARRAY}:
            return arrays[value[_ARRAY]]
        return {key: _decode(item, arrays) for key, item in value.items()}
    if isinstance(value, list):
        return [_decode(item, arrays) for item in value]
    return value
