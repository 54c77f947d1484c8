"""Hardening facts against binaries this machine's gcc builds, checked with hardening-check.

Each compiled variant drops one hardening flag and expects exactly that fact to
flip; where devscripts' ``hardening-check`` is installed, its verdict (yes / no
/ unknown, and with ``-v`` the protected and unprotected function lists) must
match ours for every fixture and for Debian's python3.11 and its lib-dynload.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from seal.daemon.image.hardening import (
    FORTIFIABLE_LIBC,
    ElfFacts,
    ElfUnreadable,
    elf_facts,
    failures,
    report_json,
    scan_tree,
)

GCC = shutil.which("gcc")
HARDENING_CHECK = shutil.which("hardening-check")
needs_gcc = pytest.mark.skipif(GCC is None, reason="gcc is not installed")
needs_hc = pytest.mark.skipif(
    HARDENING_CHECK is None, reason="hardening-check (devscripts) is not installed"
)

# A stack array (stack protector) and strcpy of unknown length into it (FORTIFY).
PROGRAM = r"""
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
    char buf[16];
    strcpy(buf, argv[argc - 1]);
    printf("%s\n", buf);
    return 0;
}
"""
# A library function with the same two properties.
LIBRARY = r"""
#include <string.h>
int copy(char *out, const char *in) {
    char buf[16];
    strcpy(buf, in);
    return (int)strlen(strcpy(out, buf));
}
"""
# No arrays, no calls: nothing to protect or fortify.
TINY = "int add(int x) { return x + 1; }\n"
PLAIN_MAIN = "int main(void) { return 0; }\n"

HARDENED = [
    "-O2",
    "-fstack-protector-strong",
    "-D_FORTIFY_SOURCE=2",
    "-Wl,-z,relro",
    "-Wl,-z,now",
]
EXE = ["-fPIE", "-pie"]
SO = ["-fPIC", "-shared"]
ALL_YES = {"pie": True, "relro": True, "bind_now": True, "stack_protector": True, "fortify": True}

# name -> (source, flags, expected facts)
FIXTURES: dict[str, tuple[str, list[str], dict[str, object]]] = {
    "hardened": (PROGRAM, HARDENED + EXE, {"kind": "executable", **ALL_YES}),
    "no-pie": (PROGRAM, HARDENED + ["-no-pie"], {**ALL_YES, "pie": False}),
    "norelro": (PROGRAM, HARDENED + EXE + ["-Wl,-z,norelro"], {**ALL_YES, "relro": False}),
    "lazy": (PROGRAM, HARDENED + EXE + ["-Wl,-z,lazy"], {**ALL_YES, "bind_now": False}),
    "no-ssp": (
        PROGRAM,
        HARDENED + EXE + ["-fno-stack-protector"],
        {**ALL_YES, "stack_protector": False},
    ),
    "no-fortify": (PROGRAM, HARDENED + EXE + ["-U_FORTIFY_SOURCE"], {**ALL_YES, "fortify": False}),
    "nothing": (
        PROGRAM,
        [
            "-O2",
            "-no-pie",
            "-fno-stack-protector",
            "-U_FORTIFY_SOURCE",
            "-Wl,-z,norelro",
            "-Wl,-z,lazy",
        ],
        {"kind": "executable", **{fact: False for fact in ALL_YES}},
    ),
    "lib.so": (LIBRARY, HARDENED + SO, {"kind": "shared-object", **ALL_YES, "pie": None}),
    "lazylib.so": (
        LIBRARY,
        HARDENED + SO + ["-Wl,-z,lazy", "-fno-stack-protector"],
        {"kind": "shared-object", "pie": None, "bind_now": False, "stack_protector": False},
    ),
    # hardening-check's "no, not found!" although compiled with the protector.
    "tiny.so": (
        TINY,
        HARDENED + SO,
        {"kind": "shared-object", "pie": None, "stack_protector": False, "fortify": None},
    ),
    # A symbol table importing nothing is still "no, not found!", not unknown.
    "bare.so": (
        TINY,
        ["-O2", "-nostdlib", *SO],
        {"kind": "shared-object", "pie": None, "stack_protector": False, "fortify": None},
    ),
    # No symbol table at all: "unknown, no symbols found".
    "static": (
        PLAIN_MAIN,
        ["-O2", "-static", "-s"],
        {"kind": "executable", "pie": False, "stack_protector": None, "fortify": None},
    ),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every fixture compiled once into one folder."""
    if GCC is None:
        pytest.skip("gcc is not installed")
    out = tmp_path_factory.mktemp("elves")
    for name, (source, flags, _) in FIXTURES.items():
        src = out / "src" / (name.replace(".so", "") + ".c")
        src.parent.mkdir(exist_ok=True)
        src.write_text(source)
        subprocess.run([GCC, *flags, str(src), "-o", str(out / name)], check=True)
    return out


def _facts(path: Path) -> ElfFacts:
    facts = elf_facts(path, path.name)
    assert facts is not None, f"{path} was not taken for an ELF file"
    return facts


# --- hardening-check's verdicts ---------------------------------------------------------------

_HC_LINES = {
    "Position Independent Executable": "pie",
    "Stack protected": "stack_protector",
    "Fortify Source functions": "fortify",
    "Read-only relocations": "relro",
    "Immediate binding": "bind_now",
}


def _verdict(text: str) -> bool | None:
    if text.startswith("yes"):
        return True
    if text.startswith("unknown") or text == "no, regular shared library (ignored)":
        return None
    assert text.startswith("no"), text
    return False


def hardening_check(*paths: Path) -> dict[str, dict[str, object]]:
    """Run ``hardening-check -v`` and parse, per file, each fact and the function lists."""
    assert HARDENING_CHECK is not None
    run = subprocess.run(
        [HARDENING_CHECK, "-v", *map(str, paths)],
        capture_output=True,
        text=True,
        env={"LANG": "C", "PATH": "/usr/bin:/bin"},
    )
    reports: dict[str, dict[str, object]] = {}
    current: dict[str, object] = {}
    for line in run.stdout.splitlines():
        if not line.startswith((" ", "\t")) and line.endswith(":"):
            current = {"protected": set(), "unprotected": set()}
            reports[line[:-1]] = current
        elif match := re.fullmatch(r" ([^:]+): (.*)", line):
            if match[1] in _HC_LINES:
                current[_HC_LINES[match[1]]] = _verdict(match[2])
        elif match := re.fullmatch(r"\t(protected|unprotected): (\S+)", line):
            current[match[1]].add(match[2])  # type: ignore[union-attr]
    missing = {str(p) for p in paths} - set(reports)
    assert not missing, f"hardening-check gave no report for {missing}: {run.stderr}"
    return reports


def assert_agrees(facts: ElfFacts, theirs: dict[str, object]) -> None:
    ours = {fact: getattr(facts, fact) for fact in _HC_LINES.values()}
    assert ours == {fact: theirs[fact] for fact in ours}, facts.path
    assert {f[2:-4] for f in facts.fortified} == theirs["protected"], facts.path
    assert set(facts.fortifiable) == theirs["unprotected"], facts.path


# --- facts of compiled binaries ---------------------------------------------------------------


@needs_gcc
class TestCompiled:
    @pytest.mark.parametrize("name", list(FIXTURES))
    def test_each_flag_flips_its_fact(self, built: Path, name: str) -> None:
        facts = _facts(built / name)
        expected = FIXTURES[name][2]
        assert {key: getattr(facts, key) for key in expected} == expected

    def test_function_lists(self, built: Path) -> None:
        assert _facts(built / "hardened").fortified == ("__strcpy_chk",)
        assert _facts(built / "hardened").fortifiable == ()
        assert _facts(built / "no-fortify").fortified == ()
        assert _facts(built / "no-fortify").fortifiable == ("strcpy",)

    @needs_hc
    def test_agrees_with_hardening_check(self, built: Path) -> None:
        paths = [built / name for name in FIXTURES]
        reports = hardening_check(*paths)
        for path in paths:
            assert_agrees(_facts(path), reports[str(path)])

    def test_object_files_and_archives_are_skipped(self, built: Path, tmp_path: Path) -> None:
        obj = tmp_path / "lib.o"
        subprocess.run([GCC, "-c", str(built / "src" / "lib.c"), "-o", str(obj)], check=True)
        archive = tmp_path / "lib.a"
        subprocess.run(["ar", "rcs", str(archive), str(obj)], check=True)
        assert elf_facts(obj, "lib.o") is None
        assert elf_facts(archive, "lib.a") is None


# --- each BIND_NOW / PIE marking on its own, patched into the dynamic segment ------------------


def _patch_dynamic(src: Path, dst: Path, old_tag: int, new_tag: int, new_value: int) -> None:
    """Copy ``src`` to ``dst`` with the dynamic entry ``old_tag`` rewritten."""
    data = bytearray(src.read_bytes())
    with open(src, "rb") as stream:
        dynamic = next(s for s in ELFFile(stream).iter_segments() if s["p_type"] == "PT_DYNAMIC")
    for offset in range(dynamic["p_offset"], dynamic["p_offset"] + dynamic["p_filesz"], 16):
        tag, _ = struct.unpack_from("<qq", data, offset)
        if tag == old_tag:
            struct.pack_into("<qq", data, offset, new_tag, new_value)
            dst.write_bytes(bytes(data))
            return
    raise AssertionError(f"no dynamic tag {old_tag:#x} in {src}")


DT_BIND_NOW, DT_FLAGS, DT_FLAGS_1 = 24, 30, 0x6FFFFFFB
DF_BIND_NOW, DF_1_NOW, DF_1_PIE = 0x8, 0x1, 0x08000000


@needs_gcc
class TestDynamicMarkings:
    # "lazy" carries only FLAGS_1 = PIE; each case turns that entry into one marking.
    @pytest.mark.parametrize(
        ("tag", "value"),
        [(DT_BIND_NOW, 0), (DT_FLAGS, DF_BIND_NOW), (DT_FLAGS_1, DF_1_NOW | DF_1_PIE)],
        ids=["DT_BIND_NOW", "DF_BIND_NOW", "DF_1_NOW"],
    )
    def test_each_bind_now_marking(self, built: Path, tmp_path: Path, tag: int, value: int):
        patched = tmp_path / "patched"
        assert _facts(built / "lazy").bind_now is False
        _patch_dynamic(built / "lazy", patched, DT_FLAGS_1, tag, value)
        facts = _facts(patched)
        assert facts.bind_now is True
        assert facts.pie is True  # PT_PHDR/PT_INTERP still say so without DF_1_PIE
        if HARDENING_CHECK:
            assert_agrees(facts, hardening_check(patched)[str(patched)])

    def test_df_1_pie_alone_makes_an_executable(self, built: Path, tmp_path: Path) -> None:
        # A shared object without PT_INTERP/PT_PHDR but flagged DF_1_PIE is a PIE executable
        # here; hardening-check (PT_PHDR only) calls it a shared library: both pass.
        patched = tmp_path / "pie.so"
        _patch_dynamic(built / "lib.so", patched, DT_FLAGS_1, DT_FLAGS_1, DF_1_NOW | DF_1_PIE)
        facts = _facts(patched)
        assert (facts.kind, facts.pie, facts.bind_now) == ("executable", True, True)
        assert not failures([facts])


# --- Debian's own binaries --------------------------------------------------------------------

PYTHON = Path("/usr/bin/python3.11")
DYNLOAD = Path("/usr/lib/python3.11/lib-dynload")


@pytest.mark.skipif(not PYTHON.exists() or not DYNLOAD.is_dir(), reason="no Debian python3.11")
class TestDebianPython:
    def test_python_binary(self) -> None:
        facts = _facts(PYTHON.resolve())
        # Debian builds python3.11 as a non-PIE executable without BIND_NOW.
        assert (facts.kind, facts.pie, facts.relro, facts.bind_now) == (
            "executable",
            False,
            True,
            False,
        )
        assert facts.stack_protector is True and facts.fortify is True
        assert "__memcpy_chk" in facts.fortified
        if HARDENING_CHECK:
            assert_agrees(facts, hardening_check(PYTHON.resolve())[str(PYTHON.resolve())])

    @needs_hc
    def test_lib_dynload_agrees_with_hardening_check(self) -> None:
        facts = scan_tree(DYNLOAD)
        assert len(facts) > 20 and all(f.kind == "shared-object" for f in facts)
        reports = hardening_check(*(DYNLOAD / f.path for f in facts))
        for item in facts:
            assert_agrees(item, reports[str(DYNLOAD / item.path)])
        # The sample covers every verdict of the two three-valued facts.
        assert {f.stack_protector for f in facts} >= {True, False}
        assert {f.fortify for f in facts} == {True, False, None}

    @needs_hc
    def test_libc_table_is_hardening_checks(self) -> None:
        assert HARDENING_CHECK is not None
        source = Path(HARDENING_CHECK).read_text()
        table = source.split("my %libc = (", 1)[1].split(");", 1)[0]
        assert set(re.findall(r"'(\w+)'\s*=>", table)) == FORTIFIABLE_LIBC


# --- files that are not (whole) ELF -----------------------------------------------------------


class TestNotElf:
    @pytest.mark.parametrize(
        "content",
        [b"", b"\x7fEL", b"#!/bin/sh\necho hi\n", b"MZ\x90\x00", b"!<arch>\n"],
        ids=["empty", "short-magic", "script", "pe", "ar"],
    )
    def test_non_elf_is_none(self, tmp_path: Path, content: bytes) -> None:
        path = tmp_path / "file"
        path.write_bytes(content)
        assert elf_facts(path, "file") is None

    @needs_gcc
    @pytest.mark.parametrize("keep", [4, 40, 64, 500, 0.5, -1], ids=str)
    def test_truncated_elf_raises(self, built: Path, tmp_path: Path, keep: float) -> None:
        data = (built / "hardened").read_bytes()
        size = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
        path = tmp_path / "cut"
        path.write_bytes(data[:size])
        with pytest.raises(ElfUnreadable) as caught:
            elf_facts(path, "usr/bin/cut")
        assert caught.value.reason == "elf-unreadable"
        assert caught.value.path == "usr/bin/cut"
        assert "\n" not in caught.value.message

    @needs_gcc
    def test_corrupt_header_raises(self, built: Path, tmp_path: Path) -> None:
        data = bytearray((built / "hardened").read_bytes())
        data[0x20:0x28] = b"\xff" * 8  # e_phoff far past the end
        path = tmp_path / "bad"
        path.write_bytes(bytes(data))
        with pytest.raises(ElfUnreadable, match="truncated: program header table"):
            elf_facts(path, "bad")

    def test_unopenable_file_raises(self, tmp_path: Path) -> None:
        with pytest.raises(ElfUnreadable, match="No such file"):
            elf_facts(tmp_path / "gone", "gone")


# --- scanning, report, failures ---------------------------------------------------------------


@pytest.fixture
def tree(built: Path, tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/lib/py").mkdir(parents=True)
    shutil.copy(built / "hardened", root / "usr/bin/good")
    shutil.copy(built / "nothing", root / "usr/bin/bad")
    shutil.copy(built / "lib.so", root / "usr/lib/py/mod.so")
    shutil.copy(built / "tiny.so", root / "usr/lib/py/a_tiny.so")
    (root / "usr/bin/script").write_text("#!/bin/sh\n")
    (root / "usr/bin/link").symlink_to("good")
    (root / "usr/bin/dirlink").symlink_to("../lib")
    data = (built / "hardened").read_bytes()
    (root / "usr/bin/cut").write_bytes(data[: len(data) // 2])
    return root


@needs_gcc
class TestScan:
    def test_scan_lists_regular_elves_sorted(self, tree: Path) -> None:
        facts = scan_tree(tree)
        assert [f.path for f in facts] == [
            "usr/bin/bad",
            "usr/bin/cut",
            "usr/bin/good",
            "usr/lib/py/a_tiny.so",
            "usr/lib/py/mod.so",
        ]
        cut = facts[1]
        assert cut.kind == "unreadable" and "truncated" in (cut.error or "")

    def test_failures(self, tree: Path) -> None:
        lines = failures(scan_tree(tree))
        assert lines == [
            "usr/bin/bad (executable): no PIE, no RELRO, no BIND_NOW, no stack protector, "
            "no FORTIFY",
            f"usr/bin/cut: unreadable ELF file: {scan_tree(tree)[1].error}",
            "usr/lib/py/a_tiny.so (shared-object): no stack protector",
        ]

    def test_failures_honour_require(self, tree: Path) -> None:
        facts = scan_tree(tree)
        assert failures(facts, require=("relro",)) == [
            "usr/bin/bad (executable): no RELRO",
            f"usr/bin/cut: unreadable ELF file: {facts[1].error}",
        ]
        with pytest.raises(ValueError, match="cfi"):
            failures(facts, require=("cfi",))

    def test_unknown_passes(self, built: Path) -> None:
        static = _facts(built / "static")
        assert failures([static], require=("stack_protector", "fortify")) == []

    def test_report_is_deterministic(self, tree: Path) -> None:
        facts = scan_tree(tree)
        report = report_json(facts)
        assert report_json(list(reversed(facts))) == report
        document = json.loads(report)
        assert json.dumps(document, sort_keys=True, indent=2).encode() + b"\n" == report
        assert [f["path"] for f in document["files"]] == [f.path for f in facts]
        summary = document["summary"]
        assert summary["files"] == 5
        assert summary["kinds"] == {"executable": 2, "shared-object": 2, "unreadable": 1}
        assert summary["pie"] == {"yes": 1, "no": 2, "not_applicable": 2}
        assert summary["stack_protector"] == {"yes": 2, "no": 3, "unknown": 0}
        assert summary["fortify"] == {"yes": 2, "no": 2, "unknown": 1}
        assert document["failures"] == failures(facts)
        good = document["files"][2]
        assert good["fortified"] == ["__strcpy_chk"] and "error" not in good
