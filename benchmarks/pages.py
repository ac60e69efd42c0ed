"""Write every measured number and figure of the docs from the stored results.

    python benchmarks/pages.py

runs no training: it rewrites the speed and time-to-accuracy sections of
`docs/benchmarks.md`, `docs/when_it_pays.md` with its figures, the
measured sections of `docs/examples.md` and `docs/soak.md`, each from its
results files (see `benchmarks/run.py`, `benchmarks/time_to_accuracy.py`,
`benchmarks/examples_page.py` and `benchmarks/soak.py` for measuring them
again). The tests check
each page against the files it was written from.
"""

import sys
from pathlib import Path

if str(Path(__file__).resolve().parent.parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import examples_page, run, soak, time_to_accuracy  # noqa: E402


def main():
    time_to_accuracy.main(["--docs"])
    run.main(["--docs", "docs/benchmarks.md", "--from-json"])
    examples_page.main(["--docs"])
    soak.main(["--docs"])


if __name__ == "__main__":
    main()
