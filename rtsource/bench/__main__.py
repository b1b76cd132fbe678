"""``python -m rtsource.bench``: the benchmark's worker processes (see
:func:`rtsource.bench.run.main`)."""

import sys

from .run import main

if __name__ == "__main__":
    sys.exit(main())
