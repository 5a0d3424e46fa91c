"""Many replicas on one Chroma server: three `paperchat chat` processes serve 16 concurrent users each while a fourth
process ingests pages; no request fails and every replica shows each new page within its refresh interval plus the
segment load. Loopback only, bounded in time; the latencies are printed, not asserted."""

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from test_reliability import TOPICS, chroma_server, synthetic_corpus  # noqa: F401 (a fixture)

from conftest import write
from paperchat.eval.bench import free_port, wait_for_server

REPLICAS = 3
USERS = 16  # per replica
REFRESH_SECONDS = 2.0
LOAD_ALLOWANCE = 10.0  # seconds a replica may take to load a new segment on a busy 2-core machine
USERS_SECONDS = 60.0  # how long the users keep asking
CLIENT_TIMEOUT = 60.0  # seconds a request may wait for its answer before it counts as failed (httpx's default is 5)


def paperchat(*args: str) -> list[str]:
    return [sys.executable, "-m", "paperchat.cli", *args]


def page(path, number: int):
    """A Daily Papers page of 50 new papers, each with a title no other paper has."""
    rows = [
        json.dumps(
            {
                "id": f"page{number}-{i:02d}",
                "title": f"Freshly posted paper {i} of page {number} on {TOPICS[i % len(TOPICS)]}",
                "abstract": f"Page {number} brings method P{number}Q{i} for {TOPICS[i % len(TOPICS)]}.",
            }
        )
        for i in range(50)
    ]
    return write(path, "\n".join(rows) + "\n")


@pytest.fixture
def replicas(chroma_server, tmp_path):  # noqa: F811 (the fixture imported above)
    """The first 200 papers ingested through the server, then three chat processes on it, each with its own folder."""
    environment = {**os.environ, "PAPERCHAT_REFRESH_SECONDS": str(REFRESH_SECONDS), "PAPERCHAT_COLLECTION": "many"}
    first = synthetic_corpus(tmp_path / "first.jsonl", 200)
    subprocess.run(
        paperchat("ingest", str(first), "--chroma-url", chroma_server, "--index", str(tmp_path / "writer"), "-q"),
        env=environment,
        check=True,
        capture_output=True,
        timeout=600,
    )
    ports = [free_port() for _ in range(REPLICAS)]
    processes = [
        subprocess.Popen(
            paperchat("chat", "--chroma-url", chroma_server, "--index", str(tmp_path / f"replica-{n}"))
            + ["--port", str(port), "-q"],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n, port in enumerate(ports)
    ]
    try:
        for port, process in zip(ports, processes):
            wait_for_server(f"http://127.0.0.1:{port}", process, 240, "/gradio_api/info")
        yield [f"http://127.0.0.1:{port}/" for port in ports], environment, tmp_path
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def test_three_replicas_serve_16_users_each_while_a_fourth_process_ingests_pages(replicas, chroma_server):  # noqa: F811
    from gradio_client import Client

    urls, environment, tmp_path = replicas
    deadline = time.monotonic() + USERS_SECONDS
    latencies: dict[str, list[float]] = {url: [] for url in urls}
    lock = threading.Lock()

    def user(url: str, number: int) -> int:
        """Asks until the deadline; every answer must be a list of hits about the topic asked."""
        client = Client(url, verbose=False, httpx_kwargs={"timeout": CLIENT_TIMEOUT})
        asked = 0
        while time.monotonic() < deadline:
            topic = TOPICS[(number + asked) % len(TOPICS)]
            started = time.perf_counter()
            hits = client.predict(topic, 3, "hybrid", api_name="/search")["hits"]
            with lock:
                latencies[url].append((time.perf_counter() - started) * 1000)
            assert hits and topic in hits[0]["title"], (url, topic, hits[:1])
            asked += 1
        return asked

    ingested: dict[int, float] = {}
    seen: dict[tuple[str, int], float] = {}

    def watch(url: str) -> None:
        """Searches each page's unique title until the replica shows it: when (answer time less its own latency)."""
        client = Client(url, verbose=False, httpx_kwargs={"timeout": CLIENT_TIMEOUT})
        for number in (1, 2):
            title = f"Freshly posted paper 7 of page {number} on {TOPICS[7]}"
            while time.monotonic() < deadline + 60:
                started = time.monotonic()
                hits = client.predict(title, 1, "hybrid", api_name="/search")["hits"]
                if number in ingested and hits and hits[0]["id"] == f"page{number}-07":
                    seen[url, number] = started - ingested[number]
                    break
                time.sleep(0.2)

    def write_pages() -> None:
        """The fourth process: a page ingested, then another, through the same server."""
        time.sleep(10)
        for number in (1, 2):
            subprocess.run(
                paperchat("ingest", str(page(tmp_path / f"page{number}.jsonl", number)))
                + ["--chroma-url", chroma_server, "--index", str(tmp_path / "writer"), "-q"],
                env=environment,
                check=True,
                capture_output=True,
                timeout=300,
            )
            ingested[number] = time.monotonic()
            time.sleep(5)

    with ThreadPoolExecutor(REPLICAS * (USERS + 1) + 1) as pool:  # a thread's exception is raised at .result()
        users = [pool.submit(user, url, n) for url in urls for n in range(USERS)]
        watchers = [pool.submit(watch, url) for url in urls]
        writer = pool.submit(write_pages)
        writer.result()
        answered = sum(u.result() for u in users)
        for w in watchers:
            w.result()
    assert answered == sum(len(found) for found in latencies.values()) > REPLICAS * USERS
    for url in urls:
        for number in (1, 2):
            assert (url, number) in seen, f"{url} never showed page {number}"
            assert seen[url, number] <= REFRESH_SECONDS + LOAD_ALLOWANCE, (url, number, seen[url, number])
    every = [ms for found in latencies.values() for ms in found]
    print(
        f"\n{REPLICAS} replicas x {USERS} users, {answered} requests in {USERS_SECONDS:.0f} s, none failed: "
        f"p50 {np.percentile(every, 50):.0f} ms, p95 {np.percentile(every, 95):.0f} ms, max {max(every):.0f} ms; "
        + "; ".join(
            f"replica {n}: p95 {np.percentile(latencies[url], 95):.0f} ms, pages shown after "
            + ", ".join(f"{seen[url, number]:.1f} s" for number in (1, 2))
            for n, url in enumerate(urls)
        )
    )
