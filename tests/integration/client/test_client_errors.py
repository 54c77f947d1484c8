"""What the daemon refuses reaches the user as one line, a reason and a documented exit
code: never a traceback (``run_seal`` checks every call's stderr)."""

from __future__ import annotations

import json

import pytest
from clientkit import daemon_pids, run_seal, seal_json

from seal.client import exitcodes

UNKNOWN = "sha256:" + "0" * 64


@pytest.fixture
def loaded(store, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_text("content\n")
    tree = seal_json(store, "store", "add", str(src))["digest"]
    blob = seal_json(store, "store", "add", str(src / "f"))["digest"]
    return store, tree, blob, src


@pytest.mark.parametrize(
    "args, code, reason",
    [
        (["store", "cat", UNKNOWN], exitcodes.NOT_FOUND, "object-not-found"),
        (["store", "stat", UNKNOWN], exitcodes.NOT_FOUND, "object-not-found"),
        (["store", "ls", "{blob}"], exitcodes.BAD_INPUT, "not-a-tree"),
        (["store", "checkout", "{blob}", "{tmp}/out"], exitcodes.BAD_INPUT, "not-a-tree"),
        (["store", "checkout", "{tree}", "{src}"], exitcodes.BAD_INPUT, "destination-exists"),
        (["store", "roots", "add", "x", UNKNOWN], exitcodes.NOT_FOUND, "object-not-found"),
        (
            ["store", "roots", "add", "bad\nname", "{tree}"],
            exitcodes.BAD_INPUT,
            "invalid-root-name",
        ),
        (["store", "roots", "rm", "nope"], exitcodes.NOT_FOUND, "root-not-found"),
        (["store", "add", "{src}", "--root", ""], exitcodes.BAD_INPUT, "invalid-root-name"),
        (["store", "add", "{src}/f", "--root", "\t"], exitcodes.BAD_INPUT, "invalid-root-name"),
    ],
)
def test_refusals_are_one_line_with_reason(loaded, tmp_path, args, code, reason):
    store, tree, blob, src = loaded
    args = [a.format(tree=tree, blob=blob, src=src, tmp=tmp_path) for a in args]
    if args[:2] == ["store", "add"]:
        (src / "g").write_text("new content, so the upload really happens\n")
    proc = run_seal(store, "--json", *args, ok=False)
    assert proc.returncode == code, proc.stderr
    assert json.loads(proc.stderr)["error"]["reason"] == reason
    plain = run_seal(store, *args, ok=False)
    assert plain.stderr.startswith("seal: error: ")
    assert len(daemon_pids(store)) == 1  # the daemon goes on serving


def test_refused_root_name_leaves_no_root_and_no_lease(loaded):
    store, tree, _, src = loaded
    (src / "h").write_text("only in this upload\n")
    run_seal(store, "store", "add", str(src), "--root", "", ok=False)
    assert seal_json(store, "store", "roots") == {}
    log = (store / "daemon.log").read_text()
    opened, ended = log.count("opened for"), log.count("cancelled") + log.count("committed")
    assert opened == ended, log
