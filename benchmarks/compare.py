"""Time `ImportanceTraining` (presample 256) against `model.fit` in one checkout.

Compare two versions of the library by running this file once with each on
the path, alternating, on a quiet machine:

```
git worktree add /tmp/before <commit>
for i in 1 2; do for d in /tmp/before .; do
  PYTHONPATH=$d python benchmarks/compare.py $d mlp
done; done
```

It prints the median time per step of both and the median over seven
interleaved rounds of their ratio.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, sys.argv[1])

import numpy as np  # noqa: E402

from benchmarks import workloads  # noqa: E402
from benchmarks.speed import _fit_steps  # noqa: E402

ROUNDS = 7


def main(checkout, name):
    x, y = workloads.synthetic_data(name, 60000)
    fit = workloads.build_model(name)
    importance = workloads.make_trainer("importance_256", workloads.build_model(name))
    fit_ms, importance_ms, ratios = [], [], []
    for _ in range(ROUNDS):
        fit_ms.append(np.median(_fit_steps(fit, x, y, 30, 128)) * 1000)
        importance_ms.append(np.median(_fit_steps(importance, x, y, 30, 128)) * 1000)
        ratios.append(importance_ms[-1] / fit_ms[-1])
    print(f"{checkout} {name}: fit {np.median(fit_ms):.2f} ms, importance "
          f"{np.median(importance_ms):.2f} ms, ratio {np.median(ratios):.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
