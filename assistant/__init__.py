"""paperchat's public API: `Assistant`, `Hit`, `Citation`, `Filter`, `Settings`, `PaperchatError`."""

import os

# One BLAS thread for numpy (unless the environment says otherwise; read when numpy loads, so before the imports
# below): a query's products are small (a few hundred vectors), and a second thread only waits for a core another
# query or process holds. Under load that doubled a search's p95 (README, issue 23, ninth part).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from paperchat.api import Assistant  # noqa: E402
from paperchat.filters import Filter  # noqa: E402
from paperchat.hits import Citation, Hit  # noqa: E402
from paperchat.index.errors import PaperchatError  # noqa: E402
from paperchat.settings import Settings  # noqa: E402

__all__ = ["Assistant", "Citation", "Filter", "Hit", "PaperchatError", "Settings"]
