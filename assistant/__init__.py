"""paperchat's public API: `Assistant`, `Hit`, `Citation`, `Settings`, `PaperchatError`."""

from paperchat.api import Assistant
from paperchat.hits import Citation, Hit
from paperchat.index.errors import PaperchatError
from paperchat.settings import Settings

__all__ = ["Assistant", "Citation", "Hit", "PaperchatError", "Settings"]
