#!/usr/bin/env python3
"""Soak: `lectern serve --workers` under mixed HTTP load for MINUTES, sampled every 10 s.

    python3 scripts/soak.py MINUTES [--lectern BIN] [--out benches/results/soak-DATE.txt]

Load (threads, standard library only): uploads of the fixtures made unique by a trailing
comment (kept closed-loop: a new upload only while fewer than 4 documents are unfinished,
so the run measures a steady state, not a growing backlog), every tenth a bad file; status
polls; searches and asks; a server-sent-events listener per upload; every fifth upload
cancelled; once 60 documents are kept, each upload deletes the oldest. Samples: RSS of the server and (apart) of its pdfium children, open file descriptors (and those of deleted files), threads,
SQLite WAL size, LanceDB version files, queue depth, indexed chunks, 5xx answers. The report gives each
series' slope over the second half (after warm-up) and fails on any 5xx or a job running
longer than 10 minutes.
"""

import argparse
import datetime
import json
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIXTURES = ["columns.pdf", "paper.pdf", "page.png", "headings.docx", "notes.pptx", "scan.pdf"]
BAD = [b"", b"%PDF-1.7\n garbage", b"PK\x03\x04 not a zip"]
# Documents kept: older ones are deleted, so the data stays the same size and growth in
# the samples is the server's, not the corpus's.
KEEP_DOCUMENTS = 60


class Client:
    def __init__(self, base, token):
        self.base, self.token = base, token
        self.lock = threading.Lock()
        self.statuses = {}
        self.failures = []  # (method, path, status, what) of 5xx and unanswered requests

    def request(self, method, path, body=None, content_type=None, stream=False, timeout=60):
        req = urllib.request.Request(self.base + path, data=body, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        if content_type:
            req.add_header("Content-Type", content_type)
        try:
            resp = urllib.request.urlopen(req, timeout=timeout)
            status = resp.status
            data = resp if stream else resp.read()
        except urllib.error.HTTPError as e:
            status, data = e.code, e.read()
        except (urllib.error.URLError, OSError) as e:
            status, data = 599, str(e).encode()  # no answer at all counts as a failure
        with self.lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if status >= 500 and len(self.failures) < 20:
                what = data if isinstance(data, bytes) else b""
                self.failures.append((method, path, status, what[:200].decode(errors="replace")))
        return status, data

    def json(self, method, path, payload=None):
        body = json.dumps(payload).encode() if payload is not None else None
        status, data = self.request(method, path, body, "application/json" if body else None)
        try:
            return status, json.loads(data)
        except (ValueError, TypeError):
            return status, None

    def upload(self, name, data, collection):
        boundary = "soak" + os.urandom(8).hex()
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="collection"\r\n\r\n{collection}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
        status, data = self.request("POST", "/v1/documents", body, f"multipart/form-data; boundary={boundary}")
        try:
            return status, json.loads(data)
        except (ValueError, TypeError):
            return status, None


def tree(pid):
    """pids of `pid` and its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def sample(pid, data_dir, client, t0):
    rss = {}
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/statm") as f:
                rss[p] = int(f.read().split()[1]) * resource.getpagesize()
        except OSError:
            pass
    fds = deleted = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        fds += 1
        try:
            deleted += os.readlink(f"/proc/{pid}/fd/{fd}").endswith(" (deleted)")
        except OSError:
            pass
    with open(f"/proc/{pid}/status") as f:
        threads = int(next(line for line in f if line.startswith("Threads:")).split()[1])
    wal = os.path.join(data_dir, "lectern.db-wal")
    wal_size = os.path.getsize(wal) if os.path.exists(wal) else 0
    versions = 0
    lance = os.path.join(data_dir, "lancedb")
    for dirpath, _, files in os.walk(lance):
        if dirpath.endswith("_versions"):
            versions += len(files)
    _, collections = client.json("GET", "/v1/collections")
    chunks = sum(c.get("chunks", 0) for c in (collections or {}).get("collections", []))
    _, queues = client.json("GET", "/v1/queues")
    depth = sum(q.get("available", 0) + q.get("running", 0) for q in (queues or {}).get("queues", []))
    with client.lock:
        errors = sum(n for s, n in client.statuses.items() if s >= 500)
    return {
        "t": time.monotonic() - t0,
        "rss_mib": rss.get(pid, 0) / 2**20,
        "children_rss_mib": sum(v for p, v in rss.items() if p != pid) / 2**20,
        "fds": fds,
        "deleted_fds": deleted,
        "threads": threads,
        "wal_mib": wal_size / 2**20,
        "lance_versions": versions,
        "queue_depth": depth,
        "chunks": chunks,
        "5xx": errors,
    }


def slope_per_hour(points):
    """Least-squares slope of (seconds, value) points, per hour."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    return 0.0 if var == 0 else sum((t - mx) * (v - my) for t, v in points) / var * 3600


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("minutes", type=float)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/lectern/target"))
    parser.add_argument("--lectern", default=os.path.join(target, "debug", "lectern"))
    parser.add_argument("--out", default=os.path.join(ROOT, "benches", "results", f"soak-{datetime.date.today()}.txt"))
    args = parser.parse_args()
    data_dir = tempfile.mkdtemp(prefix="lectern-soak-")
    models = os.path.join(ROOT, "models", "cache")
    base_args = [args.lectern, "--data-dir", data_dir, "--models-dir", models]
    token = subprocess.run(base_args + ["tokens", "create", "--name", "soak"], capture_output=True, text=True, check=True)
    secret = next(w for w in token.stdout.split() if w.startswith("lct_"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(os.path.join(data_dir, "serve.log"), "w")
    server = subprocess.Popen(base_args + ["serve", "--workers", "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=log)
    client = Client(f"http://127.0.0.1:{port}", secret)
    deadline = time.monotonic() + 60
    while client.request("GET", "/healthz")[0] != 200:
        if time.monotonic() > deadline or server.poll() is not None:
            sys.exit("the server did not start; see " + log.name)
        time.sleep(0.2)

    client.statuses.clear()  # the probes above were answered before the server listened
    client.failures.clear()
    fixtures = {name: open(os.path.join(ROOT, "fixtures", name), "rb").read() for name in FIXTURES}
    docs, docs_lock, stop = [], threading.Lock(), threading.Event()
    counts = {"uploads": 0, "cancels": 0, "deletes": 0, "searches": 0, "asks": 0, "polls": 0, "sse": 0}
    rng = random.Random(7)

    def unfinished():
        _, listing = client.json("GET", "/v1/documents?status=queued&limit=100")
        queued = len((listing or {}).get("documents", []))
        _, listing = client.json("GET", "/v1/documents?status=running&limit=100")
        return queued + len((listing or {}).get("documents", []))

    def uploader():
        n = 0
        while not stop.is_set():
            if unfinished() >= 4:
                time.sleep(1)
                continue
            n += 1
            if n % 10 == 0:
                name, data = "bad.pdf", BAD[n % len(BAD)]
            else:
                name = FIXTURES[n % len(FIXTURES)]
                data = fixtures[name] + f"\n%soak {n}\n".encode()
            status, body = client.upload(name, data, rng.choice(["soak-a", "soak-b"]))
            counts["uploads"] += 1
            if status == 202 and body:
                with docs_lock:
                    docs.append(body["document_id"])
                    oldest = docs.pop(0) if len(docs) > KEEP_DOCUMENTS else None
                if oldest:
                    client.request("DELETE", f"/v1/documents/{oldest}")
                    counts["deletes"] += 1
                threading.Thread(target=listen, args=(body["document_id"],), daemon=True).start()
                if n % 5 == 0:
                    time.sleep(rng.uniform(0, 2))
                    client.request("POST", f"/v1/documents/{body['document_id']}/cancel")
                    counts["cancels"] += 1
            time.sleep(0.5)

    def listen(doc_id):
        status, resp = client.request("GET", f"/v1/documents/{doc_id}/events", stream=True, timeout=900)
        if status == 200:
            counts["sse"] += 1
            try:
                for line in resp:
                    if stop.is_set():
                        break
            except OSError:
                pass

    def poller():
        while not stop.is_set():
            with docs_lock:
                recent = docs[-5:]
            for doc_id in recent:
                client.json("GET", f"/v1/documents/{doc_id}")
                counts["polls"] += 1
            time.sleep(0.5)

    def searcher():
        questions = ["tides and harbours", "geospatial data model", "speaker notes", "Baiona map"]
        while not stop.is_set():
            q = rng.choice(questions)
            client.json("POST", "/v1/search", {"query": q, "collection": rng.choice(["soak-a", "soak-b"])})
            counts["searches"] += 1
            if rng.random() < 0.2:
                client.json("POST", "/v1/ask", {"question": f"what about {q}?", "collection": "soak-a"})
                counts["asks"] += 1
            time.sleep(1)

    threads = [threading.Thread(target=f, daemon=True) for f in (uploader, poller, searcher)]
    for t in threads:
        t.start()
    t0, samples = time.monotonic(), []
    end = t0 + args.minutes * 60
    while time.monotonic() < end and server.poll() is None:
        samples.append(sample(server.pid, data_dir, client, t0))
        print(json.dumps({k: round(v, 1) for k, v in samples[-1].items()}), flush=True)
        time.sleep(10)
    stop.set()
    for t in threads:  # their last requests are answered before the server stops
        t.join(timeout=60)
    alive = server.poll() is None
    # Jobs running for over 10 minutes are stuck.
    stuck = []
    with docs_lock:
        ids = list(docs)
    for doc_id in ids:
        _, doc = client.json("GET", f"/v1/documents/{doc_id}")
        for job in (doc or {}).get("jobs", []):
            started = job.get("started_at")
            if job.get("state") == "running" and started and time.time() * 1000 - started > 600_000:
                stuck.append(job["id"])
    statuses = dict(sorted(client.statuses.items()))
    server.terminate()
    server.wait(timeout=60)

    half = [s for s in samples if s["t"] >= samples[-1]["t"] / 2] if samples else []
    series = ["rss_mib", "children_rss_mib", "fds", "deleted_fds", "threads", "wal_mib", "lance_versions", "queue_depth", "chunks"]
    lines = [
        f"# Soak, {datetime.datetime.now():%Y-%m-%d %H:%M}: scripts/soak.py {args.minutes:g} on {os.uname().nodename} ({os.cpu_count()} cores)",
        f"lectern serve --workers, SQLite + local LanceDB; load: {json.dumps(counts)}",
        f"HTTP answers by status: {json.dumps(statuses)} (599: no answer); server alive at the end: {alive}; stuck jobs: {stuck}",
        f"failed requests: {client.failures}",
        "",
        "series over the second half (after warm-up): first, last, min, max, least-squares slope per hour",
    ]
    for key in series:
        values = [s[key] for s in half]
        if values:
            slope = slope_per_hour([(s["t"], s[key]) for s in half])
            lines.append(f"  {key:<15} {values[0]:9.1f} {values[-1]:9.1f} {min(values):9.1f} {max(values):9.1f} {slope:+10.2f}/h")
    lines += ["", "samples (every 10 s):"] + ["  " + json.dumps({k: round(v, 1) for k, v in s.items()}) for s in samples]
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines[: 6 + len(series)]))
    print(f"written to {args.out}; data in {data_dir}")
    errors = sum(n for s, n in statuses.items() if s >= 500)
    sys.exit(0 if alive and not stuck and errors == 0 else 1)


if __name__ == "__main__":
    main()
