"""rtsource: real-time EEG source imaging over LSL (eLORETA + 3D-PIUNet, atlas regions)."""

import logging

__version__ = "0.1.0"

logging.getLogger("rtsource").addHandler(logging.NullHandler())


def __getattr__(name):  # lazy: importing rtsource must stay cheap for the CLI
    if name in ("localize", "LocalizeResult"):
        from .localization import LocalizeResult, localize

        return {"localize": localize, "LocalizeResult": LocalizeResult}[name]
    raise AttributeError(name)
