"""The line protocol between a benchmark run and its worker processes.

The parent starts a worker with ``python -m rtsource.bench --{pipeline,baseline}-worker
JOB`` (:class:`Child`), where JOB is a JSON file naming the configuration and where to
write the result. The worker says ``READY {json}`` once prepared and waits for ``GO``
(:func:`wait_line`); on ``STOP`` it writes its result file and says ``DONE {}``
(:func:`announce`); :func:`stop_worker` is the parent's side of that ending.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._threads import limit_threads
from .._util import logger
from .stats import json_default
from .streams import AmplifierPusher, Subscriber

__all__ = ["Child", "announce", "close_run", "stop_worker", "wait_line"]


# -- parent side ------------------------------------------------------------------------------
class Child:
    """A worker process speaking a line protocol on stdin/stdout.

    Parameters
    ----------
    args : list of str
        Arguments of ``python -m rtsource.bench`` (see :func:`rtsource.bench.run.main`).
    """

    def __init__(self, args: list[str]) -> None:
        env = limit_threads(dict(os.environ))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rtsource.bench", *args], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines.put),
                         daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr.append),
                         daemon=True).start()

    @staticmethod
    def _read(stream: Any, put: Callable[[Any], None]) -> None:
        for line in stream:
            put(line.rstrip("\n"))
        put(None)

    def expect(self, word: str, timeout: float) -> dict[str, Any]:
        """Wait for a line ``WORD {json}`` from the child."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise TimeoutError(
                    f"The benchmark worker did not say {word} within {timeout:g} s:\n"
                    + "\n".join(x for x in self.stderr[-30:] if x)) from None
            if line is None:
                self.proc.wait(10)
                raise RuntimeError(
                    f"The benchmark worker ended (exit {self.proc.returncode}) before {word}:\n"
                    + "\n".join(x for x in self.stderr[-40:] if x))
            if line.startswith(word + " "):
                return json.loads(line[len(word) + 1:])
            logger.debug("worker: %s", line)

    def send(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def stop_worker(child: Child, result_path: Path, timeout: float) -> dict:
    """Ask a worker process to stop and read the JSON result it wrote."""
    child.send("STOP")
    child.expect("DONE", timeout)
    return json.loads(result_path.read_text())


def close_run(sub: Subscriber | None, child: Child, pusher: AmplifierPusher) -> None:
    """Tear a run down: subscriber first (inlets before outlets), then worker, pusher."""
    if sub is not None:
        sub.close()
    child.kill()
    pusher.close()


# -- worker side ------------------------------------------------------------------------------
def wait_line(word: str) -> None:
    """Worker side: block until the parent sends ``word`` (or closes stdin)."""
    while True:
        line = sys.stdin.readline()
        if not line or line.strip() == word:
            return


def announce(word: str, payload: dict[str, Any]) -> None:
    """Worker side: send the parent the line ``WORD {json}``."""
    sys.stdout.write(f"{word} {json.dumps(payload, default=json_default)}\n")
    sys.stdout.flush()
