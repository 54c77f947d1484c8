"""Reproducibility: a real C compile in the sandbox, `seal check` passing and failing,
and one derivation giving one output digest from two stores and two environments."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import textwrap
from pathlib import Path

import pytest
from buildkit import BuildDaemon, shell_drv

C_PROGRAM = textwrap.dedent(
    """\
    #include <stdio.h>
    #include "greet.h"
    int main(void) { greet("sandbox"); return 0; }
    """
)
C_LIBRARY = textwrap.dedent(
    """\
    #include <stdio.h>
    #include "greet.h"
    void greet(const char *who) { printf("hello from the %s\\n", who); }
    """
)
MAKEFILE = textwrap.dedent(
    """\
    CFLAGS = -O2 -Wall -ffile-prefix-map=/build=.
    hello: main.o greet.o
    \t$(CC) -o $@ main.o greet.o
    %.o: %.c greet.h
    \t$(CC) $(CFLAGS) -c $<
    """
)


def c_project(where):
    src = where / "src"
    src.mkdir()
    (src / "main.c").write_text(C_PROGRAM)
    (src / "greet.c").write_text(C_LIBRARY)
    (src / "greet.h").write_text("void greet(const char *who);\n")
    (src / "Makefile").write_text(MAKEFILE)
    return src


def test_a_c_project_compiles_in_the_sandbox_reproducibly(tmp_path, toolchain_root_dir):
    daemon = BuildDaemon(tmp_path / "store").start()
    try:
        root = daemon.add(toolchain_root_dir)
        c_project(tmp_path)
        drv = shell_drv(
            tmp_path / "hello.json",
            root,
            "cp -r /inputs/src/. . && make CC=gcc && ./hello > $out/said"
            " && install -m 755 hello $out/hello",
            name="hello-c",
            env={"PATH": "/usr/bin:/bin"},
            inputs={"src": {"path": "src"}},
        )
        first = json.loads(daemon.seal("--json", "realize", str(drv)).stdout)
        check = daemon.seal("check", str(drv))
        assert check.returncode == 0 and "reproducible" in check.stdout
        shown = json.loads(daemon.seal("--json", "drv", "show", str(drv)).stdout)
        [result] = shown["checks"]
        assert result["reproducible"] and result["actual"] == first["outputs"]
        listing = json.loads(daemon.seal("--json", "store", "ls", first["outputs"]["out"]).stdout)
        said = next(e for e in listing if e["path"] == "said")
        assert daemon.seal("store", "cat", said["digest"]).stdout == "hello from the sandbox\n"
        assert next(e for e in listing if e["path"] == "hello")["mode"] == "100755"
    finally:
        daemon.close()


def test_check_names_the_file_a_non_deterministic_build_changes(builder, tmp_path):
    drv = shell_drv(
        tmp_path / "nd.json",
        builder.shell_root,
        "echo same > $out/stable; cat /proc/sys/kernel/random/uuid > $out/stamp",
        name="nondeterministic",
    )
    builder.seal("realize", str(drv))
    proc = builder.seal("check", str(drv), ok=False)
    assert proc.returncode == 1, proc.stderr
    assert "NOT reproducible" in proc.stdout
    assert "differs: out/stamp" in proc.stdout and "out/stable" not in proc.stdout
    shown = json.loads(builder.seal("--json", "drv", "show", str(drv)).stdout)
    [result] = shown["checks"]
    assert not result["reproducible"] and result["differing"] == ["out/stamp"]
    assert result["expected"] == shown["realisation"]["outputs"]
    assert result["actual"] != result["expected"]
    if result["diffoscope"]:  # diffoscope is installed: its report names the file too
        assert "stamp" in result["diffoscope"]


RECORDER = (
    "id > $out/id; uname -n > $out/hostname; env | sort > $out/env; umask > $out/umask;"
    " date -d @$SOURCE_DATE_EPOCH > $out/date; pwd > $out/pwd;"
    " ls -la --time-style=+ / | grep -v ' proc$' > $out/ls-root;"
    " ls -la --time-style=+ /inputs /build > $out/ls-dirs"
)


def test_one_derivation_one_digest_from_two_stores_and_two_environments(tmp_path, shell_root_dir):
    """Everything a build can observe is fixed by the derivation except the wall clock,
    which seal does not fake (nor does Nix): so `date` formats SOURCE_DATE_EPOCH (the
    time zone and locale show through it) and `ls` prints no times (mount points carry
    the time they were made).  The kernel shows /proc's link count as the host's
    process count and its owner as the daemon's user mapped in, so the listing of /
    leaves that one line out."""
    if not _can_switch_users():
        pytest.skip(_can_switch_users.reason)
    digests, seen = [], []
    for n, env in enumerate(
        [
            ({"TZ": "America/New_York", "LANG": "de_DE.UTF-8"}, 0o077, False),
            ({"TZ": "Asia/Tokyo", "LANG": "C", "HOME": "/nonexistent"}, 0o002, False),
            ({"TZ": "Europe/Paris", "LC_ALL": "fr_FR.UTF-8"}, 0o022, True),
        ]
    ):
        env, umask, unprivileged = env
        # another user must be able to reach its store: not under pytest's 0700 tmp_path
        base = Path(tempfile.mkdtemp(prefix="seal-det-")) if unprivileged else tmp_path
        os.chmod(base, 0o755)
        store = base / f"place-{n}" / ("deeper/" * n) / "store"
        store.parent.mkdir(parents=True)
        daemon = BuildDaemon(store, env=env, umask=umask, unprivileged=unprivileged).start()
        try:
            root = daemon.add(shell_root_dir)
            drv = shell_drv(tmp_path / f"rec-{n}.json", root, RECORDER)
            out = json.loads(daemon.seal("--json", "realize", str(drv)).stdout)
            listing = json.loads(daemon.seal("--json", "store", "ls", out["outputs"]["out"]).stdout)
            files = {e["path"]: daemon.seal("store", "cat", e["digest"]).stdout for e in listing}
            digests.append(out["outputs"]["out"])
            seen.append(files)
        finally:
            daemon.close()
            if unprivileged:
                shutil.rmtree(base, ignore_errors=True)
    assert "uid=1000" in files["id"] and files["hostname"] == "localhost\n"
    assert files["umask"] == "0022\n" and files["pwd"] == "/build\n"
    assert "TZ=UTC" in files["env"] and "HOME=/homeless-shelter" in files["env"]
    assert files["date"] == "Tue Jan  1 00:00:00 UTC 1980\n"
    for other in seen[1:]:
        for name in sorted(files):
            assert other[name] == seen[0][name], name
    assert len(set(digests)) == 1


def _can_switch_users() -> bool:
    if os.geteuid() != 0:
        _can_switch_users.reason = "running a daemon as another user needs root"
    elif not (shutil.which("setpriv") and shutil.which("unshare")):
        _can_switch_users.reason = "setpriv and unshare (util-linux) are not installed"
    else:
        return True
    return False
