"""Only the socket's owner can use the daemon: the CLI run as another uid is refused.

Needs root (to make a throwaway user and switch to it); skipped otherwise, with
the reason.  The client process imports everything as root and then drops to
the other uid before ``main`` runs, because that user cannot read this
Python installation (it may live under /root); every call the client makes
to the daemon happens as the other uid.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from clientkit import check_output, daemon_pids, run_seal, seal_json, stop_all

from seal.client import exitcodes

OTHER = "seal-test-other"

AS_OTHER_USER = textwrap.dedent(
    """
    import os, sys
    uid, gid = int(sys.argv[1]), int(sys.argv[2])
    from seal.client import cli, daemonproc, rpc, upload   # loaded as root
    import seal.store, grpc_health.v1.health_pb2_grpc
    daemonproc.client_version()
    try:  # load what gRPC imports on first use, while the files are readable
        rpc.Connection("unix:/nonexistent/s.sock").status(timeout=0.2)
    except rpc.ClientError:
        pass
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    assert os.getuid() == uid and os.geteuid() == uid
    sys.exit(cli.main(sys.argv[3:]))
    """
)


def other_user() -> pwd.struct_passwd:
    if os.getuid() != 0:
        pytest.skip(
            f"needs root to create and switch to another user (running as uid {os.getuid()})"
        )
    try:
        return pwd.getpwnam(OTHER)
    except KeyError:
        pass
    if shutil.which("useradd") is None:
        pytest.skip("useradd is not installed, so no throwaway user can be made")
    subprocess.run(["useradd", "--system", "--no-create-home", OTHER], check=True, timeout=60)
    return pwd.getpwnam(OTHER)


def as_other(user: pwd.struct_passwd, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-c", AS_OTHER_USER, str(user.pw_uid), str(user.pw_gid), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    check_output(proc, proc.stderr)
    return proc


@pytest.fixture
def open_dir():
    """A directory every user may enter (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="seal-perm-", dir="/tmp"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        stop_all(d / "store")
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("where", ["default-socket", "socket-in-an-open-directory"])
def test_another_uid_cannot_use_the_socket(open_dir, where):
    user = other_user()
    store = open_dir / "store"
    sock_args = []
    if where == "socket-in-an-open-directory":
        (open_dir / "run").mkdir(mode=0o755)
        sock_args = ["--socket", str(open_dir / "run" / "s.sock")]
    info = seal_json(store, *sock_args, "daemon", "start")
    sock = info["socket"].removeprefix("unix://")
    src = open_dir / "src"
    src.mkdir()
    (src / "f").write_text("secret\n")
    src.chmod(0o755)

    for verb in (["store", "add", str(src)], ["daemon", "status"], ["daemon", "stop"]):
        proc = as_other(user, "--store", str(store), *sock_args, "--json", *verb)
        assert proc.returncode == exitcodes.PERMISSION, proc.stderr
        assert json.loads(proc.stderr)["error"]["reason"] == "permission-denied"
    assert daemon_pids(store) == [info["pid"]]  # still running, and nobody started another
    assert seal_json(store, *sock_args, "store", "roots") == {}  # nothing was added

    # control: with the permissions opened up, the same client as the same user gets in,
    # so the refusals above came from the socket's permissions and nothing else
    os.chmod(sock, 0o666)
    os.chmod(os.path.dirname(sock), 0o711)
    proc = as_other(user, "--store", str(store), *sock_args, "--json", "daemon", "status")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["pid"] == info["pid"]
    run_seal(store, *sock_args, "daemon", "stop")
