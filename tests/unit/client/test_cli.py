"""The seal CLI, called in-process through main([...]): exit codes, outputs, errors.

Every store verb goes through a real daemon that the CLI starts by itself
(the embedded default); each test's fixture stops the daemon it started.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sealtest import daemon_pids

from seal.client import exitcodes
from seal.client.cli import main
from seal.store import Store


@pytest.fixture
def store_dir(tmp_path: Path):
    d = tmp_path / "store"
    yield d
    main(["--store", str(d), "-q", "daemon", "stop"])
    leftover = daemon_pids(d)
    for pid in leftover:
        os.kill(pid, 9)
    assert not leftover, f"daemons still running after 'seal daemon stop': {leftover}"


@pytest.fixture
def src(tmp_path: Path) -> Path:
    d = tmp_path / "src"
    (d / "pkg" / "sub").mkdir(parents=True)
    (d / "pkg" / "__init__.py").write_text("")
    (d / "pkg" / "mod.py").write_text("x = 1\n")
    tool = d / "pkg" / "sub" / "tool"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    (d / "pkg" / "link").symlink_to("mod.py")
    return d


def seal(capsys, store_dir: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--store", str(store_dir), *args])
    out, err = capsys.readouterr()
    return code, out, err


def records(store_dir: Path) -> int:
    if not (store_dir / "VERSION").exists():
        return 0
    with Store.open(store_dir, readonly=True) as s:
        return s.db.count()


def object_files(store_dir: Path) -> list[str]:
    objects = store_dir / "objects"
    return sorted(str(p) for p in objects.rglob("*") if p.is_file()) if objects.exists() else []


class TestVerbs:
    def test_add_prints_digest_last_and_is_stable(self, capsys, store_dir, src):
        code, out, _ = seal(capsys, store_dir, "store", "add", str(src))
        assert code == 0
        digest = out.strip().splitlines()[-1]
        assert digest.startswith("sha256:") and len(digest) == 71
        code, out2, _ = seal(capsys, store_dir, "store", "add", str(src))
        assert out2.strip().splitlines()[-1] == digest

    def test_add_file_gives_blob_digest(self, capsys, store_dir, src):
        code, out, _ = seal(capsys, store_dir, "--json", "store", "add", str(src / "pkg/mod.py"))
        assert code == 0
        result = json.loads(out)
        assert result["kind"] == "blob"
        import hashlib

        assert result["digest"] == "sha256:" + hashlib.sha256(b"x = 1\n").hexdigest()

    def test_ls_lists_mode_size_digest_path(self, capsys, store_dir, src):
        _, out, _ = seal(capsys, store_dir, "-q", "store", "add", str(src))
        tree = out.strip()
        code, out, _ = seal(capsys, store_dir, "store", "ls", tree)
        assert code == 0
        lines = out.splitlines()
        paths = [line.split(maxsplit=3)[3] for line in lines]
        assert paths == [
            "pkg/",
            "pkg/__init__.py",
            "pkg/link -> mod.py",
            "pkg/mod.py",
            "pkg/sub/",
            "pkg/sub/tool",
        ]
        tool = lines[-1].split()
        assert tool[0] == "100755" and tool[1] == str(len("#!/bin/sh\necho hi\n"))
        assert lines[3].split()[0] == "100644"
        assert lines[2].split()[0] == "120000"

    def test_cat_checkout_stat(self, capsys, store_dir, src, tmp_path):
        _, out, _ = seal(capsys, store_dir, "--json", "store", "add", str(src))
        tree = json.loads(out)["digest"]
        _, out, _ = seal(capsys, store_dir, "--json", "store", "ls", tree)
        mod = next(e for e in json.loads(out) if e["path"] == "pkg/mod.py")
        assert main(["--store", str(store_dir), "store", "cat", mod["digest"]]) == 0
        assert capsys.readouterr().out == "x = 1\n"
        dest = tmp_path / "out"
        code, out, _ = seal(capsys, store_dir, "store", "checkout", tree, str(dest))
        assert code == 0
        assert (dest / "pkg/mod.py").read_text() == "x = 1\n"
        assert os.readlink(dest / "pkg/link") == "mod.py"
        assert os.stat(dest / "pkg/sub/tool").st_mode & stat.S_IXUSR
        code, out, _ = seal(capsys, store_dir, "--json", "store", "stat", tree)
        assert code == 0 and json.loads(out)["kind"] == "tree"

    def test_roots_and_gc(self, capsys, store_dir, src, tmp_path):
        other = tmp_path / "other"
        other.mkdir()
        (other / "f").write_text("only here")
        _, out, _ = seal(capsys, store_dir, "-q", "store", "add", str(src), "--root", "keep")
        kept = out.strip()
        _, out, _ = seal(capsys, store_dir, "-q", "store", "add", str(other))
        dropped = out.strip()
        code, out, _ = seal(capsys, store_dir, "--json", "store", "roots")
        assert json.loads(out) == {"keep": kept}
        code, out, _ = seal(capsys, store_dir, "--json", "store", "gc", "--dry-run")
        planned = json.loads(out)
        assert dropped in planned["objects"] and kept not in planned["objects"]
        assert records(store_dir) == 8  # nothing deleted by a dry run
        code, out, _ = seal(capsys, store_dir, "--json", "store", "gc")
        assert code == 0 and sorted(json.loads(out)["objects"]) == sorted(planned["objects"])
        code, _, err = seal(capsys, store_dir, "--json", "store", "stat", dropped)
        assert code == exitcodes.NOT_FOUND
        assert json.loads(err)["error"]["reason"] == "object-not-found"
        assert seal(capsys, store_dir, "store", "verify")[0] == 0
        assert seal(capsys, store_dir, "store", "roots", "rm", "keep")[0] == 0
        assert seal(capsys, store_dir, "--json", "store", "roots")[1].strip() == "{}"
        code, _, err = seal(capsys, store_dir, "--json", "store", "roots", "rm", "keep")
        assert code == exitcodes.NOT_FOUND
        assert json.loads(err)["error"]["reason"] == "root-not-found"
        assert seal(capsys, store_dir, "store", "roots", "add", "again", kept)[0] == 0

    def test_global_options_after_the_verb(self, capsys, store_dir, src):
        code = main(["store", "add", str(src), "--store", str(store_dir), "--json"])
        out = capsys.readouterr().out
        assert code == 0 and json.loads(out)["kind"] == "tree"

    def test_store_from_environment(self, capsys, monkeypatch, store_dir, src):
        monkeypatch.setenv("SEAL_STORE", str(store_dir))
        assert main(["-q", "store", "add", str(src)]) == 0
        assert (store_dir / "VERSION").exists()

    def test_empty_directory_and_empty_file(self, capsys, store_dir, tmp_path):
        empty = tmp_path / "empty"
        (empty / "d").mkdir(parents=True)
        (empty / "d" / "nothing").write_bytes(b"")
        code, out, _ = seal(capsys, store_dir, "--json", "store", "add", str(empty))
        assert code == 0
        tree = json.loads(out)["digest"]
        dest = tmp_path / "copy"
        assert seal(capsys, store_dir, "store", "checkout", tree, str(dest))[0] == 0
        assert (dest / "d" / "nothing").read_bytes() == b""
        assert seal(capsys, store_dir, "store", "verify")[0] == 0


class TestDaemonVerbs:
    def test_store_verbs_start_a_daemon_and_status_reports_it(self, capsys, store_dir, src):
        assert seal(capsys, store_dir, "daemon", "status")[0] == exitcodes.FAILED
        assert daemon_pids(store_dir) == []
        assert seal(capsys, store_dir, "-q", "store", "add", str(src))[0] == 0
        code, out, _ = seal(capsys, store_dir, "--json", "daemon", "status")
        info = json.loads(out)
        assert code == 0 and info["running"] is True
        assert daemon_pids(store_dir) == [info["pid"]]
        assert info["store"] == str(store_dir) and info["store_format"] == 1
        code, out, _ = seal(capsys, store_dir, "daemon", "status")
        assert code == 0 and f"pid:     {info['pid']}" in out and "uptime:" in out

    def test_stop_then_start(self, capsys, store_dir):
        assert seal(capsys, store_dir, "daemon", "stop")[0] == 0  # none running: still fine
        code, out, _ = seal(capsys, store_dir, "--json", "daemon", "start")
        first = json.loads(out)
        assert code == 0 and first["started"] is True
        code, out, _ = seal(capsys, store_dir, "--json", "daemon", "start")
        assert json.loads(out)["started"] is False and json.loads(out)["pid"] == first["pid"]
        code, out, _ = seal(capsys, store_dir, "--json", "daemon", "stop")
        assert code == 0 and json.loads(out)["pid"] == first["pid"]
        assert daemon_pids(store_dir) == []
        assert seal(capsys, store_dir, "daemon", "status")[0] == exitcodes.FAILED

    def test_read_verbs_do_not_create_a_store(self, capsys, store_dir):
        code, _, err = seal(capsys, store_dir, "--json", "store", "verify")
        assert code == exitcodes.NOT_FOUND
        assert json.loads(err)["error"]["reason"] == "store-missing"
        assert seal(capsys, store_dir, "--json", "store", "roots")[1].strip() == "{}"
        assert not store_dir.exists() and daemon_pids(store_dir) == []

    def test_socket_option_and_environment(self, capsys, monkeypatch, store_dir, src, tmp_path):
        sock = tmp_path / "s.sock"
        code = main(
            ["--store", str(store_dir), "--socket", str(sock), "-q", "store", "add", str(src)]
        )
        assert code == 0 and sock.exists()
        capsys.readouterr()
        monkeypatch.setenv("SEAL_SOCKET", str(sock))
        code, out, _ = seal(capsys, store_dir, "--json", "daemon", "status")
        assert code == 0 and json.loads(out)["socket"].endswith(str(sock))
        assert main(["--store", str(store_dir), "-q", "daemon", "stop"]) == 0
        assert not sock.exists()


class TestVerify:
    def test_flipped_byte_is_named_and_fails(self, capsys, store_dir, src):
        _, out, _ = seal(capsys, store_dir, "--json", "store", "add", str(src / "pkg/mod.py"))
        digest = json.loads(out)["digest"]
        path = store_dir / "objects/sha256" / digest[7:9] / digest[7:]
        path.chmod(0o644)
        data = bytearray(path.read_bytes())
        data[0] ^= 0x01
        path.write_bytes(bytes(data))
        code, out, _ = seal(capsys, store_dir, "store", "verify")
        assert code == exitcodes.FAILED
        assert f"corrupt  {digest}" in out.splitlines()

    def test_clean_store_passes(self, capsys, store_dir, src):
        seal(capsys, store_dir, "store", "add", str(src))
        code, out, _ = seal(capsys, store_dir, "--json", "store", "verify")
        assert code == 0 and json.loads(out)["ok"] is True


def _special(kind: str, path: Path) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        try:
            os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("creating a device node needs root (CAP_MKNOD)")
    elif kind in ("setuid", "setgid", "sticky"):
        path.write_text("x")
        bit = {"setuid": stat.S_ISUID, "setgid": stat.S_ISGID, "sticky": stat.S_ISVTX}[kind]
        os.chmod(path, 0o755 | bit)
        if not os.stat(path).st_mode & bit:
            pytest.skip(f"this filesystem does not keep the {kind} bit")


class TestBadInput:
    """One line on stderr, a documented non-zero exit, no traceback, nothing written."""

    def check_refused(self, capsys, store_dir, args, expected_code, reason):
        before_records, before_files = records(store_dir), object_files(store_dir)
        code = main(["--store", str(store_dir), *args])
        out, err = capsys.readouterr()
        assert code == expected_code
        assert "Traceback" not in err
        assert len(err.strip().splitlines()) <= 2  # message + optional hint
        assert err.startswith("seal: error: ")
        assert records(store_dir) == before_records
        assert object_files(store_dir) == before_files
        code = main(["--store", str(store_dir), "--json", *args])
        assert json.loads(capsys.readouterr().err)["error"]["reason"] == reason
        return err

    @pytest.mark.parametrize("kind", ["fifo", "device", "setuid", "setgid", "sticky"])
    def test_special_file_in_tree(self, capsys, store_dir, src, kind):
        seal(capsys, store_dir, "store", "add", str(src))  # a store with content
        bad = src / "pkg" / "sub" / f"bad-{kind}"
        _special(kind, bad)
        err = self.check_refused(
            capsys, store_dir, ["store", "add", str(src)], exitcodes.BAD_INPUT, "unsupported-file"
        )
        assert str(bad) in err

    def test_missing_path(self, capsys, store_dir, tmp_path):
        err = self.check_refused(
            capsys,
            store_dir,
            ["store", "add", str(tmp_path / "nope")],
            exitcodes.BAD_INPUT,
            "unsupported-file",
        )
        assert "nope" in err

    @pytest.mark.parametrize(
        "text", ["sha256:zz", "md5:" + "0" * 32, "sha256:" + "A" * 64, "", "sha256:" + "0" * 63]
    )
    def test_malformed_digest(self, capsys, store_dir, text):
        self.check_refused(
            capsys, store_dir, ["store", "stat", text], exitcodes.BAD_INPUT, "invalid-digest"
        )

    def test_unknown_digest(self, capsys, store_dir, src):
        seal(capsys, store_dir, "store", "add", str(src))
        self.check_refused(
            capsys,
            store_dir,
            ["store", "cat", "sha256:" + "0" * 64],
            exitcodes.NOT_FOUND,
            "object-not-found",
        )

    def test_newer_store_version(self, capsys, store_dir, src):
        seal(capsys, store_dir, "store", "add", str(src))
        assert seal(capsys, store_dir, "daemon", "stop")[0] == 0
        (store_dir / "VERSION").write_text("99\n")
        code, _, err = seal(capsys, store_dir, "store", "add", str(src))
        assert code == exitcodes.INCOMPATIBLE and "newer" in err and "Traceback" not in err
        code, _, err = seal(capsys, store_dir, "store", "verify")
        assert code == exitcodes.INCOMPATIBLE

    def test_second_writer_names_the_holder(self, capsys, store_dir, src):
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from seal.store import Store; s = Store.open(sys.argv[1]); "
                "print('ready', flush=True); sys.stdin.read()",
                str(store_dir),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "ready"
            # the auto-started daemon cannot take the store: one line naming the holder
            err = self.check_refused(
                capsys, store_dir, ["store", "add", str(src)], exitcodes.BUSY, "store-locked"
            )
            assert f"pid {holder.pid}" in err
            assert "daemon.log" in err  # the hint names the log
            code, _, err = seal(capsys, store_dir, "store", "verify")
            assert code == exitcodes.BUSY and f"pid {holder.pid}" in err
            assert daemon_pids(store_dir) == []
        finally:
            holder.stdin.close()
            holder.wait(timeout=30)

    def test_debug_shows_the_traceback(self, store_dir):
        with pytest.raises(Exception) as info:
            main(["--store", str(store_dir), "--debug", "store", "stat", "sha256:zz"])
        assert info.value.reason == "invalid-digest"

    def test_usage_error_exit_code(self, capsys, store_dir):
        assert main(["--store", str(store_dir), "store", "frobnicate"]) == exitcodes.USAGE
        assert main(["--store", str(store_dir), "store", "add"]) == exitcodes.USAGE

    def test_real_process_prints_no_traceback(self, store_dir, tmp_path):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "seal.client.cli",
                "--store",
                str(store_dir),
                "store",
                "add",
                str(tmp_path / "missing"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == exitcodes.BAD_INPUT
        assert result.stderr.startswith("seal: error: ") and "Traceback" not in result.stderr
