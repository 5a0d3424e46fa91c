"""paperchat's public API: `Assistant`, `Hit`, `Citation`, `Filter`, `Settings`, `PaperchatError`."""

from paperchat.api import Assistant
from paperchat.filters import Filter
from paperchat.hits import Citation, Hit
from paperchat.index.errors import PaperchatError
from paperchat.settings import Settings

__all__ = ["Assistant", "Citation", "Filter", "Hit", "PaperchatError", "Settings"]
