"""Thread settings for the two cores LSL, BLAS, numba and torch share: one place.

Import and call :func:`limit_threads` before numpy, numba or torch load (this module
imports neither). The user's own settings win (``setdefault``).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

__all__ = ["THREAD_ENV", "limit_threads"]

#: BLAS/OpenMP/numba pools of one thread each: the live path runs one processing thread
#: beside LSL's own threads (oversubscribed, a small SVD ran 45x slower; FACTS.md). Idle
#: OpenMP threads sleep instead of spinning: compiled torch on a busy 2-core machine is
#: about 8x faster this way (measured, bench/bench_refine.py).
THREAD_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
}


def limit_threads(env: MutableMapping[str, str] | None = None) -> MutableMapping[str, str]:
    """Set :data:`THREAD_ENV` in ``env`` (default ``os.environ``) where not already set;
    returns ``env`` (pass a copy of ``os.environ`` for a child process)."""
    env = os.environ if env is None else env
    for var, value in THREAD_ENV.items():
        env.setdefault(var, value)
    return env
