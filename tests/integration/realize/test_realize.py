"""Realizing derivations through a real daemon: the CLI, the cache, failures, the graph,
shared builds, cancellation, what a build can see of the daemon, and the fetch builtin."""

from __future__ import annotations

import hashlib
import http.server
import json
import subprocess
import threading
import time

import pytest
from buildkit import BuildDaemon, events, log_of, shell_drv

from seal.proto.v1 import build_pb2 as bpb


def test_realize_prints_the_output_digest_last_and_the_output_is_stored(builder, tmp_path):
    drv = shell_drv(
        tmp_path / "hello.json", builder.shell_root, "echo hello > $out/greeting; echo built"
    )
    proc = builder.seal("realize", str(drv))
    digest = proc.stdout.strip().splitlines()[-1]
    assert digest.startswith("sha256:")
    assert "built" in proc.stderr  # the build's log, live on stderr
    listing = builder.seal("store", "ls", digest).stdout
    assert "greeting" in listing
    assert builder.seal("store", "cat", listing.split()[2]).stdout == "hello\n"


def test_a_second_realize_is_a_cache_hit_and_runs_no_build(builder, tmp_path):
    drv = shell_drv(tmp_path / "d.json", builder.shell_root, "echo $RANDOM > $out/x")
    first = json.loads(builder.seal("--json", "realize", str(drv)).stdout)
    second = json.loads(builder.seal("--json", "realize", str(drv)).stdout)
    assert not first["cached"] and second["cached"]
    assert first["outputs"] == second["outputs"]
    assert len(builder.builds(first["drv"])) == 1
    # by digest too, and the stored derivation, realisation and log are queryable
    by_digest = json.loads(builder.seal("--json", "realize", first["drv"]).stdout)
    assert by_digest["outputs"] == first["outputs"]
    shown = json.loads(builder.seal("--json", "drv", "show", first["drv"]).stdout)
    assert shown["realisation"]["outputs"] == first["outputs"]
    assert shown["derivation"]["name"] == "test"


def test_a_failed_build_exits_12_with_the_reason_and_keeps_its_log(builder, tmp_path):
    drv = shell_drv(tmp_path / "f.json", builder.shell_root, "echo about to fail; exit 3")
    proc = builder.seal("-q", "realize", str(drv), ok=False)
    assert proc.returncode == 12, proc.stderr
    assert "exited with status 3" in proc.stderr
    log = builder.seal("log", str(drv)).stdout
    assert "about to fail" in log
    [record] = builder.builds(
        json.loads(builder.seal("--json", "drv", "show", str(drv)).stdout)["drv"]
    )
    assert record.status == "failed" and "status 3" in record.reason
    assert json.loads(builder.seal("--json", "drv", "show", str(drv)).stdout)["realisation"] is None


@pytest.mark.parametrize(
    ("doc", "code", "message"),
    [
        ({"name": "x", "bulder": {}}, 3, "unknown field 'bulder'"),
        ({"name": "x", "builder": {"builtin": "nope", "version": 1}}, 3, "unknown builtin 'nope'"),
        (
            {
                "name": "x",
                "builder": {"sandbox": {"args": ["/bin/true"]}, "root": "r"},
                "inputs": {"r": {"object": "sha256:" + "0" * 64}},
            },
            4,
            "is not in the store",
        ),
    ],
)
def test_bad_derivations_get_one_line_and_an_exit_code(builder, tmp_path, doc, code, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    proc = builder.seal("realize", str(path), ok=False)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr


def test_derivation_files_naming_each_other_build_in_order(builder, tmp_path):
    shell_drv(tmp_path / "lib.json", builder.shell_root, "echo lib-v1 > $out/lib.txt", name="lib")
    shell_drv(
        tmp_path / "app.json",
        builder.shell_root,
        "cat /inputs/lib/lib.txt > $out/app.txt; echo app >> $out/app.txt",
        name="app",
        inputs={"lib": {"drv": "lib.json"}},
    )
    r = json.loads(builder.seal("--json", "realize", str(tmp_path / "app.json")).stdout)
    listing = builder.seal("--json", "store", "ls", r["outputs"]["out"]).stdout
    [entry] = [e for e in json.loads(listing) if e["path"] == "app.txt"]
    assert builder.seal("store", "cat", entry["digest"]).stdout == "lib-v1\napp\n"
    (tmp_path / "a.json").write_text(json.dumps({"name": "a", "inputs": {"b": {"drv": "b.json"}}}))
    (tmp_path / "b.json").write_text(json.dumps({"name": "b", "inputs": {"a": {"drv": "a.json"}}}))
    proc = builder.seal("realize", str(tmp_path / "a.json"), ok=False)
    assert proc.returncode == 3 and "cycle: a.json -> b.json -> a.json" in proc.stderr


def test_a_local_path_input_is_uploaded_and_mounted_read_only(builder, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "data.txt").write_text("from the client\n")
    drv = shell_drv(
        tmp_path / "p.json",
        builder.shell_root,
        "cat /inputs/src/data.txt > $out/copy;"
        " touch /inputs/src/new 2>/dev/null || echo ro >> $out/copy",
        inputs={"src": {"path": "src"}},
    )
    out = builder.seal("realize", str(drv)).stdout.strip().splitlines()[-1]
    entry = json.loads(builder.seal("--json", "store", "ls", out).stdout)[0]
    assert builder.seal("store", "cat", entry["digest"]).stdout == "from the client\nro\n"


def test_two_clients_realizing_at_once_share_one_build_and_both_get_the_full_log(builder, tmp_path):
    script = "for i in 1 2 3 4 5; do echo line-$i; sleep 0.3; done; echo done > $out/f"
    drv = shell_drv(tmp_path / "shared.json", builder.shell_root, script)
    results: dict[int, tuple] = {}

    def client(n: int) -> None:
        if n == 1:
            time.sleep(0.6)  # join a build already running: the log is replayed from its start
        results[n] = events(builder.realize_stream(drv))

    threads = [threading.Thread(target=client, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    (seen0, res0), (seen1, res1) = results[0], results[1]
    assert res0.outputs == res1.outputs and res0.outputs["out"]
    for seen in (seen0, seen1):
        assert log_of(seen).decode().split() == [f"line-{i}" for i in range(1, 6)]
    assert len(builder.builds(res0.drv)) == 1  # the daemon's records: one build ran


def test_a_client_that_goes_away_cancels_a_build_nobody_else_waits_for(builder, tmp_path):
    drv = shell_drv(tmp_path / "long.json", builder.shell_root, "echo started; sleep 300")
    stream = builder.realize_stream(drv)
    for ev in stream:
        if ev.WhichOneof("event") == "log":
            break
    stream.cancel()
    drv_digest = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        builds = [b for b in builder.builds() if b.name == "test" and b.status != "ok"]
        running = [b for b in builds if b.status == "running"]
        if builds and not running:
            drv_digest = builds[0].drv
            break
        time.sleep(0.2)
    assert drv_digest, "the build was not cancelled"
    assert builder.builds(drv_digest)[0].status == "cancelled"
    info = builder.query.GetDerivation(bpb.DerivationRef(drv=drv_digest))
    assert not info.HasField("realisation")
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "sleep 300" not in ps, "a process of the cancelled build survived"


def test_a_build_sees_nothing_of_the_store_or_the_daemon_socket(builder, tmp_path):
    store = builder.store
    script = (
        f"for p in {store} {store}/db {store}/objects {store}/daemon.sock /proc/1/root{store}; do"
        " if ls $p >/dev/null 2>&1; then echo VISIBLE $p; else echo hidden $p; fi; done > $out/r"
    )
    out = builder.seal("realize", str(shell_drv(tmp_path / "s.json", builder.shell_root, script)))
    digest = out.stdout.strip().splitlines()[-1]
    entry = json.loads(builder.seal("--json", "store", "ls", digest).stdout)[0]
    report = builder.seal("store", "cat", entry["digest"]).stdout
    assert "VISIBLE" not in report and report.count("hidden") == 5, report


class _Files(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self):  # noqa: N802 - the http.server API
        body = self.files.get(self.path)
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args):
        pass


@pytest.fixture
def http_files():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Files.files
    server.shutdown()


def test_the_fetch_builtin_keeps_only_the_declared_bytes(builder, tmp_path, http_files):
    base, files = http_files
    files["/a.tar"] = b"archive bytes\n" * 100
    good = hashlib.sha256(files["/a.tar"]).hexdigest()

    def fetch(sha: str) -> str:
        doc = {
            "name": "a.tar",
            "builder": {"builtin": "fetch-url", "version": 1, "params": {"url": f"{base}/a.tar"}},
            "fixed": {"sha256": sha},
        }
        path = tmp_path / f"fetch-{sha[:8]}.json"
        path.write_text(json.dumps(doc))
        return str(path)

    digest = builder.seal("realize", fetch(good)).stdout.strip().splitlines()[-1]
    assert digest == f"sha256:{good}"
    assert builder.seal("store", "cat", digest).stdout == files["/a.tar"].decode()
    proc = builder.seal("-q", "realize", fetch("0" * 64), ok=False)
    assert proc.returncode == 12
    assert f"expected sha256:{'0' * 64}, got sha256:{good}" in proc.stderr


def test_fetch_url_v2_falls_back_to_a_mirror_and_checks_size_and_hash(
    builder, tmp_path, http_files
):
    base, files = http_files
    files["/good/b.whl"] = data = b"wheel bytes\n" * 300
    files["/bad/b.whl"] = b"other bytes\n" * 300  # same size, other content
    sha = hashlib.sha256(data).hexdigest()

    def fetch(name: str, urls: list[str], size: int) -> str:
        doc = {
            "name": name,
            "builder": {
                "builtin": "fetch-url",
                "version": 2,
                "params": {"urls": urls, "size": size},
            },
            "fixed": {"sha256": sha},
        }
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc))
        return str(path)

    # the first URL is missing, the second serves other bytes, the third the pinned ones
    urls = [f"{base}/gone/b.whl", f"{base}/bad/b.whl", f"{base}/good/b.whl"]
    out = builder.seal("realize", fetch("b-whl", urls, len(data)))
    assert out.stdout.strip().splitlines()[-1] == f"sha256:{sha}"
    log = builder.seal("log", fetch("b-whl", urls, len(data))).stdout
    assert "hash mismatch for b-whl" in log and log.rstrip().endswith(f"sha256:{sha}")

    # no URL serves the pinned bytes: the first failure is named, nothing is stored
    proc = builder.seal("-q", "realize", fetch("b-bad", urls[:2], len(data)), ok=False)
    assert proc.returncode == 12 and "not found" in proc.stderr.lower(), proc.stderr
    assert "1 more URLs failed" in proc.stderr
    proc = builder.seal("-q", "realize", fetch("b-size", urls[2:], len(data) - 1), ok=False)
    assert proc.returncode == 12 and "size" in proc.stderr.lower(), proc.stderr


def test_max_jobs_1_runs_one_build_at_a_time(tmp_path, shell_root_dir):
    daemon = BuildDaemon(tmp_path / "store", args=["--max-jobs", "1"]).start()
    try:
        root = daemon.add(shell_root_dir)
        drvs = [
            shell_drv(tmp_path / f"j{n}.json", root, f"sleep 1; echo {n} > $out/n", name=f"j{n}")
            for n in range(2)
        ]
        threads = [threading.Thread(target=events, args=(daemon.realize_stream(d),)) for d in drvs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        first, second = sorted(daemon.builds(), key=lambda b: b.started)
        assert first.status == second.status == "ok"
        assert second.started >= first.started + first.duration_seconds
    finally:
        daemon.close()
