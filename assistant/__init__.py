"""paperchat's public API: `Assistant`, `Hit`, `Citation`, `Settings`, `PaperchatError`."""

from assistant.api import Assistant
from assistant.hits import Citation, Hit
from assistant.settings import Settings
from index.errors import PaperchatError

__all__ = ["Assistant", "Citation", "Hit", "PaperchatError", "Settings"]
