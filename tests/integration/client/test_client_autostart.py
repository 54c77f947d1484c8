"""The embedded default: a store verb starts the store's daemon; racing clients start one."""

from __future__ import annotations

import signal
import subprocess

import pytest
from clientkit import (
    check_output,
    daemon_pids,
    run_seal,
    seal_at_once,
    seal_cmd,
    seal_json,
    stop_all,
    wait_for,
)


@pytest.fixture
def src(tmp_path):
    d = tmp_path / "src"
    (d / "sub").mkdir(parents=True)
    (d / "a").write_text("a\n")
    (d / "sub" / "b").write_text("b\n")
    return d


def test_add_starts_a_daemon_and_succeeds(store, src, tmp_path):
    assert daemon_pids(store) == []
    assert run_seal(store, "daemon", "status", ok=False).returncode == 1
    digest = run_seal(store, "-q", "store", "add", str(src)).stdout.strip()
    assert digest.startswith("sha256:")
    status = seal_json(store, "daemon", "status")
    assert daemon_pids(store) == [status["pid"]]
    assert status["store"] == str(store)
    assert (store / "daemon.log").read_text().count("starts the daemon") == 1
    # the next calls use the same daemon
    run_seal(store, "store", "checkout", digest, str(tmp_path / "out"))
    assert (tmp_path / "out" / "sub" / "b").read_text() == "b\n"
    assert seal_json(store, "daemon", "status")["pid"] == status["pid"]


@pytest.mark.parametrize("round_", range(3))
def test_two_clients_at_once_start_one_daemon(store, src, tmp_path, round_):
    procs = seal_at_once(store, [["-q", "store", "add", str(src)]] * 2, go=tmp_path / "go")
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        check_output(p, err)
        assert p.returncode == 0, err
        outs.append(out.strip())
    assert outs[0] == outs[1]
    pids = daemon_pids(store)
    assert len(pids) == 1, f"{len(pids)} daemons for one store: {pids}"
    assert seal_json(store, "daemon", "status")["pid"] == pids[0]
    assert (store / "daemon.log").read_text().count("starts the daemon") == 1


def test_stop_and_status_from_the_cli(store, src):
    run_seal(store, "-q", "store", "add", str(src))
    (pid,) = daemon_pids(store)
    out = run_seal(store, "daemon", "status").stdout
    assert f"pid:     {pid}" in out and f"store:   {store}" in out
    run_seal(store, "daemon", "stop")
    assert daemon_pids(store) == [] and not (store / "daemon.sock").exists()
    assert run_seal(store, "daemon", "status", ok=False).returncode == 1
    # a stopped daemon does not stop the store verbs: the next one starts it again
    assert run_seal(store, "--json", "store", "verify").returncode == 0
    assert len(daemon_pids(store)) == 1


def test_daemon_run_serves_in_the_foreground(store, src):
    proc = subprocess.Popen(seal_cmd(store, "daemon", "run"), stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: run_seal(store, "daemon", "status", ok=False).returncode == 0, 30, "it")
        assert seal_json(store, "daemon", "status")["pid"] == proc.pid  # the CLI process itself
        run_seal(store, "-q", "store", "add", str(src))  # used, not replaced
        assert daemon_pids(store) == []  # no `-m seal.daemon` was spawned
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "Traceback" not in err and "serving store" in err  # its log goes to stderr
        assert run_seal(store, "daemon", "status", ok=False).returncode == 1
    finally:
        if proc.poll() is None:
            proc.kill()


def test_long_store_path_uses_a_short_socket(tmp_path, src):
    store = tmp_path / ("x" * 60) / ("y" * 60) / "store"
    try:
        digest = run_seal(store, "-q", "store", "add", str(src)).stdout.strip()
        info = seal_json(store, "daemon", "status")
        assert len(info["socket"].removeprefix("unix://")) < 108
        assert run_seal(store, "-q", "store", "cat", digest).returncode == 0
    finally:
        assert stop_all(store) == []
