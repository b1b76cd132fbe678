"""Lifecycle shared by the LSL senders that run on a background thread (player, simulator)."""

from __future__ import annotations

import threading
from typing import Any

from .._util import logger


class BackgroundSender:
    """Start/stop/wait for a blocking ``_send(stop_event, ready_event, **kwargs)``.

    Subclasses set ``self.name`` and ``_what`` (for messages) and implement ``_send``,
    which must set ``ready_event`` once its outlets are discoverable and return when
    ``stop_event`` is set. An exception in the thread is logged and re-raised (wrapped)
    by :meth:`start` or :meth:`stop`: never silent.
    """

    _what = "LSL sender"
    name: str

    def _init_background(self) -> None:
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None

    def _send(self, stop_event: threading.Event, ready_event: threading.Event,
              **kwargs: Any) -> Any:
        raise NotImplementedError

    def _run_thread(self, kwargs: dict[str, Any]) -> None:
        try:
            self._send(self._stop, self._ready, **kwargs)
        except BaseException as err:  # reported by start()/stop(); never silent
            self.error = err
            logger.exception("%s %r failed.", self._what, self.name)
        finally:
            self._ready.set()

    def start(self, timeout: float = 10.0, **kwargs: Any):
        """Run on a background thread; return once the outlets are discoverable.

        Raises
        ------
        RuntimeError
            If already started, or if the thread failed or did not get ready in time.
        """
        if self._thread is not None:
            raise RuntimeError(f"{self._what} {self.name!r} was already started.")
        self._thread = threading.Thread(target=self._run_thread, args=(kwargs,),
                                        name=f"{self._what}-{self.name}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError(f"{self._what} {self.name!r} did not start within {timeout:g} s.")
        if self.error is not None:
            raise RuntimeError(f"{self._what} {self.name!r} failed to start: {self.error}"
                               ) from self.error
        return self

    @property
    def running(self) -> bool:
        """True while the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a finite run to end by itself; True if it ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop, join the thread and destroy the outlets.

        Raises
        ------
        RuntimeError
            When the thread does not end in time or ended with an error.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"{self._what} {self.name!r} did not stop within {timeout:g} s.")
        if self.error is not None:
            raise RuntimeError(f"{self._what} {self.name!r} failed: {self.error}") from self.error

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
