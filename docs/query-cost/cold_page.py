"""One-off: where the time of a 50-paper page goes, written into a bench index by a process that has just opened it
(the README's performance table, "The 1M page row"). For a cold page cache, as root first:
`sync; echo 3 > /proc/sys/vm/drop_caches`. It adds the page to the index, as the bench's own page does.

    python docs/query-cost/cold_page.py W/index-1000000
"""

import cProfile
import pstats
import sys
import time
from pathlib import Path

from paperchat import Assistant
from paperchat.eval.bench import ComposedEmbedder, new_page, sentence_pool

index = Path(sys.argv[1])
pool = sentence_pool([])
started = time.perf_counter()
writer = Assistant.open(index, bootstrap=False, load_model=False, notify=print)
writer.store.embedder = ComposedEmbedder(pool)
page = new_page(writer, pool)
print("open and snapshot s", round(time.perf_counter() - started, 2), flush=True)
profile = cProfile.Profile()
started = time.perf_counter()
profile.enable()
writer.store.ingest(page, progress=False)
profile.disable()
print("ingest s", round(time.perf_counter() - started, 2), flush=True)
pstats.Stats(profile).sort_stats("cumtime").print_stats(35)
