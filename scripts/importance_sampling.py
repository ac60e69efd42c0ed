#!/usr/bin/env python
"""The experiment command `importance-sampling`, runnable from a checkout.

Run `python scripts/importance_sampling.py --help` for its arguments.
"""

import os
import sys

# This file is named like the package: search the repository root instead of
# this folder, so that `import importance_sampling` finds the package.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from importance_sampling.experiment import main  # noqa: E402

if __name__ == "__main__":
    main()
