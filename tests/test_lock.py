"""The write lock across real processes: a waiter says once whom it waits for, and gives up after lock_timeout."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import write
from paperchat import PaperchatError
from paperchat.index.store import HOLD_AFTER_BATCH, HOLDER_FILE, WriteLock

HOLDER = """
import sys, time
from pathlib import Path
from paperchat.index.store import WriteLock

with WriteLock(Path(sys.argv[1]), 0, "test", print).held():
    print("held", flush=True)
    sys.stdin.readline()  # a line asks to let go, a second or so later
    time.sleep(1.5)
"""


@pytest.fixture
def holder(tmp_path):
    """A real second process holding the lock on `tmp_path / "lock"` until it reads a line."""
    folder = tmp_path / "lock"
    folder.mkdir()
    script = write(tmp_path / "holder.py", HOLDER)
    process = subprocess.Popen(
        [sys.executable, str(script), str(folder), "ingest-of-a-test"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline() == "held\n"
    yield folder, process
    if process.poll() is None:
        process.kill()
    process.wait(timeout=30)


def test_a_waiter_names_the_holder_once_and_gives_up_after_lock_timeout(holder):
    folder, process = holder
    messages = []
    waiter = WriteLock(folder, 1.0, "INDEX", messages.append)
    with waiter.held(wait=False) as holding:
        assert holding is False and messages == []  # a refresh that has a snapshot keeps it and does not wait
    started = time.monotonic()
    named = rf"pid {process.pid} \(holder\.py .*ingest-of-a-test\)"
    refused = rf"the index at INDEX is still being written by {named} after 1 s; .*lock_timeout"
    with pytest.raises(PaperchatError, match=refused):
        with waiter.held():
            pytest.fail("the lock was taken while another process held it")
    assert time.monotonic() - started >= 1.0
    assert len(messages) == 1 and "waiting up to 1 s" in messages[0]
    assert messages[0].startswith(f"the index at INDEX is being written by pid {process.pid} (holder.py")

    process.stdin.write("let go\n")
    process.stdin.flush()
    patient = WriteLock(folder, 60.0, "INDEX", messages.append)
    with patient.held() as holding:
        assert holding and process.wait(timeout=30) == 0
        assert patient.holder().startswith(f"pid {os.getpid()} ({os.path.basename(sys.argv[0])}")
    assert not (folder / HOLDER_FILE).exists()  # the note goes with the lock


def test_a_killed_holder_leaves_a_free_lock_and_a_note_nobody_trusts(holder):
    folder, process = holder
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    messages = []
    waiter = WriteLock(folder, 0.0, "INDEX", messages.append)
    assert (folder / HOLDER_FILE).exists() and waiter.holder() == "another process"  # its pid is gone
    with waiter.held() as holding:
        assert holding and messages == []


@pytest.mark.slow
def test_a_search_while_an_ingest_holds_the_index_names_it_and_stops_after_lock_timeout(tmp_path):
    """End to end: `paperchat ingest` holds the lock (stopped after its first write batch by the test hook);
    `paperchat search` on the same new index says whom it waits for, then fails in one line."""
    index = tmp_path / "index"
    rows = [
        {"id": f"p{i}", "title": f"Protein folding study {i}", "abstract": f"We fold protein {i} with method M{i}."}
        for i in range(60)
    ]
    corpus = write(tmp_path / "c.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    cli = [sys.executable, "-m", "paperchat.cli"]
    env = {**os.environ, "PAPERCHAT_WRITE_BATCH": "20", "PYTHONUNBUFFERED": "1"}
    ingest = subprocess.Popen(
        [*cli, "ingest", str(corpus), "--index", str(index), "-q"],
        env={**env, HOLD_AFTER_BATCH: "1"},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert "write batch 1 is written" in ingest.stderr.readline()
        started = time.monotonic()
        search = subprocess.run(
            [*cli, "search", "protein folding", "--index", str(index)],
            env={**env, "PAPERCHAT_LOCK_TIMEOUT": "2"},
            capture_output=True,
            text=True,
            timeout=300,
        )
        waited = time.monotonic() - started
    finally:
        ingest.kill()
        ingest.wait(timeout=30)
    lines = search.stderr.strip().splitlines()
    holder = rf"pid {ingest.pid} \(\S*(cli\.py|paperchat) ingest {corpus}"
    assert search.returncode == 2 and "Traceback" not in search.stderr and waited >= 2, search.stderr[-2000:]
    assert len(lines) == 2, lines
    assert lines[0].startswith("paperchat: the index at") and "waiting up to 2 s" in lines[0]
    assert re.search(holder, lines[0]), lines[0]
    assert lines[1].startswith(f"paperchat: error: the index at {index} is still being written by pid {ingest.pid}")
