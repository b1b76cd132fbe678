"""rtsource: real-time EEG source imaging over LSL (eLORETA + 3D-PIUNet, atlas regions)."""

import logging

from ._logging import FallbackHandler
from ._version import __version__

# warnings reach users who configured no logging (once each); silent once they do
logging.getLogger("rtsource").addHandler(FallbackHandler())

__all__ = ["LocalizeResult", "Localizer", "__version__", "localize"]


def __getattr__(name):  # lazy: importing rtsource must stay cheap for the CLI
    if name == "config":  # rtsource.config.load_config(...) after a plain `import rtsource`
        import importlib

        return importlib.import_module(".config", __name__)
    if name in ("localize", "LocalizeResult", "Localizer"):
        from .online import localize as offline_api  # the module rtsource.online.localize

        return getattr(offline_api, name)
    raise AttributeError(f"module 'rtsource' has no attribute {name!r}")
