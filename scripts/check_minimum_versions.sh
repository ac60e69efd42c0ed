#!/usr/bin/env bash
# Check the minimum versions of pyproject.toml: for each Keras backend, a
# fresh virtual environment with Keras and the backend pinned to their
# minimums, the library installed from this checkout, a short training run of
# ImportanceTraining and ApproximateImportanceTraining (the smoke test) and
# `pytest tests/backends` when that folder exists.
#
#   scripts/check_minimum_versions.sh                 # tensorflow jax torch
#   scripts/check_minimum_versions.sh jax             # one backend
#   KERAS=3.15.1 scripts/check_minimum_versions.sh    # another Keras
#
# The pins are read from pyproject.toml (the `>=` bound of `keras`,
# `tensorflow-cpu`, `jax` and `torch`); KERAS, TENSORFLOW, JAX and TORCH
# override them. The library is installed from the working tree, uncommitted
# changes included. Each backend takes one or two minutes (pip and tests) on
# 2 CPU cores. Ends with a table of what passed; exits non-zero if any
# backend failed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
backends=("$@")
[ ${#backends[@]} -gt 0 ] || backends=(tensorflow jax torch)

minimum() {  # the `>=` bound of the first requirement "$1>=..." in pyproject.toml
    grep -oE "\"$1>=[^,;\"]+" pyproject.toml | head -1 | sed -E 's/.*>=//'
}
KERAS=${KERAS:-$(minimum keras)}
TENSORFLOW=${TENSORFLOW:-$(minimum tensorflow-cpu)}
JAX=${JAX:-$(minimum jax)}
TORCH=${TORCH:-$(minimum torch)}
for version in "$KERAS" "$TENSORFLOW" "$JAX" "$TORCH"; do
    [ -n "$version" ] || { echo "could not read the minimums from pyproject.toml" >&2; exit 2; }
done

export TF_CPP_MIN_LOG_LEVEL=3 PIP_DISABLE_PIP_VERSION_CHECK=1
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT

cat > "$workdir/smoke.py" <<'EOF'
"""Train a few steps with both training classes on random arrays."""
import numpy as np
import keras

import importance_sampling.datasets  # noqa: F401 (every private Keras import)
from importance_sampling.training import ApproximateImportanceTraining, ImportanceTraining

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(512, 8)).astype("float32")
y = (x[:, 0] > 0).astype("int64")
for cls in (ImportanceTraining, ApproximateImportanceTraining):
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="tanh"),
                              keras.layers.Dense(2, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = cls(model, presample=128).fit(x, y, batch_size=32, epochs=2, verbose=0,
                                            validation_data=(x[:64], y[:64]))
    losses = history.history["loss"]
    assert int(model.optimizer.iterations) > 0 and np.all(np.isfinite(losses)), losses
    print(f"{cls.__name__} on {keras.backend.backend()}: loss {losses}")
EOF

summary=()
failed=0
for backend in "${backends[@]}"; do
    case $backend in
        tensorflow) pins=("keras==$KERAS" "tensorflow-cpu==$TENSORFLOW"); extra=cpu ;;
        jax) pins=("keras==$KERAS" "jax==$JAX" "jaxlib==$JAX"); extra=jax ;;
        torch) pins=("keras==$KERAS" "torch==$TORCH"); extra=torch ;;
        *) echo "unknown backend: $backend (tensorflow, jax or torch)" >&2; exit 2 ;;
    esac
    echo "=== $backend: ${pins[*]}"
    venv="$workdir/venv-$backend"
    python3 -m venv "$venv"
    start=$SECONDS
    if ! "$venv/bin/pip" install -q "${pins[@]}" "$root[$extra,test-backends]"; then
        summary+=("| $backend | ${pins[*]} | pip install failed |")
        failed=1
        continue
    fi
    installed=$("$venv/bin/python" -c "
import importlib.metadata as m
names = ['keras', {'tensorflow': 'tensorflow-cpu', 'jax': 'jax', 'torch': 'torch'}['$backend'], 'numpy']
print(' '.join(f'{n}=={m.version(n)}' for n in names))")
    echo "installed in $((SECONDS - start)) s: $installed"
    result=passed
    (cd "$workdir" && KERAS_BACKEND=$backend "$venv/bin/python" smoke.py) || result="smoke test failed"
    if [ "$result" = passed ]; then
        if [ -d tests/backends ]; then
            KERAS_BACKEND=$backend "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/backends
            rc=$?
            [ $rc -eq 0 ] || result="pytest tests/backends failed (exit $rc)"
        else
            result="passed (smoke test only: no tests/backends)"
        fi
    fi
    [ "${result%% *}" = passed ] || failed=1
    summary+=("| $backend | $installed | $result |")
    rm -rf "$venv"
done

echo
echo "Python $(python3 -c 'import platform; print(platform.python_version())'), $(date -u +%Y-%m-%d)"
echo "| backend | versions | result |"
echo "|---|---|---|"
printf '%s\n' "${summary[@]}"
exit $failed
