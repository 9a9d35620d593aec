#!/usr/bin/env python3
"""Three hosts that share nothing but PostgreSQL and S3, in network namespaces.

PostgreSQL (scripts/pg.sh, a cluster of its own) and the S3 server (scripts/s3.sh) listen
on 10.77.0.1, the address of a bridge in the root namespace. Hosts A, B and C are network
namespaces joined to it by veth links, each with its own hostname and an empty scratch
directory: `lectern serve` runs in A, a `lectern worker` for every queue in B and in C.
A multi-page PDF (one page per job) and a scan are uploaded to A over HTTP; once B has
finished a page job and holds another, B's worker is killed (SIGKILL); C finishes. Then:
each document is done, with its chunk, embed and generate jobs done exactly once and the
job B held finished by C; every artifact downloads from A; LanceDB holds exactly the
chunks in the store's chunks.json files; search on A finds text from pages B and C each
processed. Namespaces, links, servers and processes go on every exit path.

Run as root: `python3 tests/hosts.py` (make test does; needs `make build`). Run it with
the S3 server's venv python (scripts/s3.sh installs boto3 with moto) or any with boto3.
"""

import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
LECTERN = Path(os.environ.get("LECTERN_BIN", TARGET / "debug" / "lectern"))
SERVER = "10.77.0.1"
HOSTS = {"a": "10.77.0.10", "b": "10.77.0.11", "c": "10.77.0.12"}
BRIDGE = "lectern-tbr"
API = f"http://{HOSTS['a']}:8080"
PAGE_STAGES = ("render", "layout", "ocr")

scratch = Path(tempfile.mkdtemp(prefix="lectern-hosts-"))
processes: dict[str, subprocess.Popen] = {}


def say(*args):
    print("[hosts]", *args, file=sys.stderr, flush=True)


def run(*args, env=None, check=True, capture=False):
    return subprocess.run(args, env=env, check=check, text=True, capture_output=capture)


def ns(host):
    return f"lectern-t-{host}"


def cleanup():
    for proc in processes.values():
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    remove_links()
    run(str(ROOT / "scripts/pg.sh"), "stop", env=pg_env(), check=False, capture=True)
    run(str(ROOT / "scripts/s3.sh"), "stop", env=s3_env(), check=False, capture=True)
    run("rm", "-rf", str(scratch), check=False)


def pg_env():
    return {**os.environ, "LECTERN_PG_DIR": str(scratch / "pg"), "LECTERN_PG_LISTEN": SERVER,
            "LECTERN_PG_ALLOW": "10.77.0.0/24"}


def s3_env():
    return {**os.environ, "LECTERN_S3_HOST": SERVER}


def veth(host):
    return f"lectern-t{host}0"


def remove_links():
    """Deleting a veth end deletes the pair at once; a namespace's own go with it later."""
    for host in HOSTS:
        run("ip", "link", "del", veth(host), check=False, capture=True)
        run("ip", "netns", "del", ns(host), check=False, capture=True)
    run("ip", "link", "del", BRIDGE, check=False, capture=True)


def network():
    remove_links()  # left over from a run that was killed outright
    run("ip", "link", "add", BRIDGE, "type", "bridge")
    run("ip", "addr", "add", f"{SERVER}/24", "dev", BRIDGE)
    run("ip", "link", "set", BRIDGE, "up")
    for host, addr in HOSTS.items():
        run("ip", "netns", "add", ns(host))
        run("ip", "link", "add", veth(host), "type", "veth", "peer", "name", "eth0", "netns", ns(host))
        run("ip", "link", "set", veth(host), "master", BRIDGE, "up")
        run("ip", "-n", ns(host), "addr", "add", f"{addr}/24", "dev", "eth0")
        run("ip", "-n", ns(host), "link", "set", "eth0", "up")
        run("ip", "-n", ns(host), "link", "set", "lo", "up")


def start(host, *args, env):
    """`lectern ARGS` in the host's namespace, under hostname host-X, in its own group."""
    data = scratch / f"host-{host}"
    data.mkdir()
    log = open(scratch / f"{host}.log", "w")
    cmd = ["ip", "netns", "exec", ns(host), "unshare", "--uts", "sh", "-c",
           f'hostname host-{host} && exec "$@"', "sh", str(LECTERN), *args]
    processes[host] = subprocess.Popen(cmd, env={**env, "LECTERN_DATA_DIR": str(data)}, stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)


def http(method, path, body=None, headers=None):
    req = urllib.request.Request(API + path, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return resp.status, resp.read()


def get_json(path):
    return json.loads(http("GET", path)[1])


def upload(path):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + \
        f"\r\n--{boundary}--\r\n".encode()
    status, answer = http("POST", "/v1/documents", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 202, (status, answer)
    return json.loads(answer)["document_id"]


def wait(what, test, limit, every=0.2):
    deadline = time.time() + limit
    while time.time() < deadline:
        value = test()
        if value:
            return value
        time.sleep(every)
    tails = {h: (scratch / f"{h}.log").read_text()[-3000:] for h in HOSTS if (scratch / f"{h}.log").exists()}
    raise AssertionError(f"timed out waiting for {what}; logs: {json.dumps(tails, indent=1)}")


def jobs(doc):
    return get_json(f"/v1/documents/{doc}")["jobs"]


def by(host, job):
    return (job.get("locked_by") or "").startswith(f"host-{host}-")


def page_words(doc, page):
    """Words of the longest block on `page` of the document's JSON export."""
    content = json.loads(http("GET", f"/v1/documents/{doc}/content?format=json")[1])
    blocks = [b for p in content["pages"] for b in p["blocks"] if p["number"] == page]
    text = max((b["text"] for b in blocks), key=len)
    return " ".join(text.split()[:14])


def main():
    assert os.geteuid() == 0, "network namespaces need root"
    assert LECTERN.exists(), f"{LECTERN} is missing: run `make build` first"
    os.chmod(scratch, 0o755)  # the PostgreSQL server user reads its cluster in here
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    network()
    pg = run(str(ROOT / "scripts/pg.sh"), "start", env=pg_env(), capture=True).stdout.strip()
    database = pg.replace("127.0.0.1", SERVER)
    s3 = run(str(ROOT / "scripts/s3.sh"), "start", env=s3_env(), capture=True).stdout.strip()
    prefix = f"hosts-{uuid.uuid4().hex[:8]}"
    pipeline = (ROOT / "jobs/pipeline.toml").read_text().replace("pages_per_job = 4", "pages_per_job = 1")
    assert "pages_per_job = 1" in pipeline
    (scratch / "pipeline.toml").write_text(pipeline)
    env = {**os.environ, "DATABASE_URL": database, "LECTERN_STORE": f"s3://lectern/{prefix}",
           "AWS_ENDPOINT_URL": s3, "AWS_ACCESS_KEY_ID": "lectern", "AWS_SECRET_ACCESS_KEY": "lectern",
           "LECTERN_MODELS_DIR": str(ROOT / "models/cache"), "LECTERN_PIPELINE": str(scratch / "pipeline.toml"),
           "LECTERN_LEASE_SECS": "5", "OMP_THREAD_LIMIT": "1", "RUST_LOG": "info"}
    say(f"PostgreSQL {database}, S3 {s3}/lectern/{prefix}")
    start("a", "serve", "--listen", f"{HOSTS['a']}:8080", "--no-auth", env=env)

    def ready():
        try:
            return http("GET", "/healthz")[0] == 200
        except (urllib.error.URLError, ConnectionError, OSError):
            return False
    wait("the server on host A", ready, 60)
    for host in "bc":
        start(host, "worker", "--concurrency", "1", env=env)
    paper, scan = upload(ROOT / "fixtures/paper.pdf"), upload(ROOT / "fixtures/scan.pdf")
    say(f"uploaded {paper} (paper.pdf) and {scan} (scan.pdf)")

    def b_busy():
        all_jobs = jobs(paper) + jobs(scan)
        finished = any(by("b", j) and j["state"] == "done" and j["stage"] in PAGE_STAGES for j in all_jobs)
        held = [j for j in all_jobs if by("b", j) and j["state"] == "running"]
        return held if finished and held else None
    held = wait("host B to finish a page job and hold another", b_busy, 300, every=0.05)
    os.kill(processes["b"].pid, signal.SIGKILL)
    say(f"killed B's worker while it held job(s) {[j['id'] for j in held]}")

    def finished():
        docs = [get_json(f"/v1/documents/{d}") for d in (paper, scan)]
        return docs if all(d["status"] in ("done", "failed", "cancelled") for d in docs) else None
    docs = wait("both documents to finish on host C", finished, 900, every=1)
    for doc in docs:
        assert doc["status"] == "done", (doc["filename"], doc["status"], doc["error"])
        states = {}
        for j in doc["jobs"]:
            states.setdefault(j["stage"], []).append(j["state"])
        for stage in ("chunk", "embed", "generate"):
            assert states.get(stage) == ["done"], (doc["filename"], stage, states.get(stage))
        assert all(s == "done" for ss in states.values() for s in ss), (doc["filename"], states)
        for artifact in doc["artifacts"]:
            status, body = http("GET", f"/v1/documents/{doc['id']}/artifacts/{artifact['name']}")
            assert status == 200 and len(body) == artifact["size_bytes"] > 0, artifact
        assert {a["name"] for a in doc["artifacts"]} >= {"cheatsheet.docx", "quiz.pdf", "flashcards.json"}
    all_jobs = {j["id"]: j for d in docs for j in d["jobs"]}
    for j in held:
        again = all_jobs[j["id"]]
        assert by("c", again) and again["attempt"] >= 2, ("C finished the job B held", again)

    # LanceDB on S3 holds each chunk once.
    import boto3
    s3c = boto3.client("s3", endpoint_url=s3, aws_access_key_id="lectern", aws_secret_access_key="lectern",
                       region_name="us-east-1")
    chunks = 0
    for doc in (paper, scan):
        body = s3c.get_object(Bucket="lectern", Key=f"{prefix}/documents/{doc}/chunks.json")["Body"].read()
        chunks += len(json.loads(body))
    collections = {c["name"]: c for c in get_json("/v1/collections")["collections"]}
    assert collections["default"]["chunks"] == chunks, (collections, chunks)
    local = [p for h in "bc" for p in (scratch / f"host-{h}").rglob("*") if p.is_file()]
    assert local, "the workers' scratch directories were used"

    # Search on A finds text from pages B and C each processed.
    for host in "bc":
        done = sorted({(doc, j["payload"]["pages"][0]) for doc in (paper, scan) for j in jobs(doc)
                       if by(host, j) and j["state"] == "done" and j["stage"] in PAGE_STAGES})
        assert done, f"host {host.upper()} processed no page"
        doc, page = done[0]
        query = page_words(doc, page)
        status, body = http("POST", "/v1/search", json.dumps({"query": query, "top_k": 10, "mode": "text"}).encode(),
                            {"Content-Type": "application/json"})
        hits = json.loads(body)["hits"]
        found = [h for h in hits if h["document_id"] == doc and any(s["page"] == page for s in h["spans"])]
        assert found, (host, doc, page, query, hits[:3])
        say(f"host {host.upper()} processed (document, page) {done}; search on A finds {doc} page {page}")
    say(f"passed: {len(all_jobs)} jobs, {chunks} chunks, {len(local)} files in the workers' caches")


if __name__ == "__main__":
    main()
