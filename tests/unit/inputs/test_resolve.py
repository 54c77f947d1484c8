"""seal.daemon.inputs.resolve and .target against the local PyPI fixture (one test: real PyPI)."""

from __future__ import annotations

import io
import sys
import time
from dataclasses import replace
from threading import current_thread

import pytest
from packaging.tags import Tag
from pypifixture import FAST_RETRY, PyPIFixture

from seal.daemon.inputs.config import PackagePin
from seal.daemon.inputs.http import HttpClient
from seal.daemon.inputs.pypi import SimpleIndex
from seal.daemon.inputs.resolve import (
    InvalidMetadata,
    InvalidRequirementText,
    NoCompatibleWheel,
    NoMatchingVersion,
    Resolution,
    ResolutionConflict,
    UnknownProject,
    resolve,
)
from seal.daemon.inputs.target import InvalidTarget, Target

PY313 = Target.cpython("3.13.5")
PY311 = Target.cpython("3.11.9")
MANYLINUX = "manylinux_2_17_x86_64.manylinux2014_x86_64"


@pytest.fixture
def pypi(tmp_path):
    with PyPIFixture(tmp_path / "pypi") as server:
        yield server


@pytest.fixture
def index(pypi, tmp_path):
    with HttpClient(retry=FAST_RETRY, timeout=10) as client:
        yield SimpleIndex(pypi.index_url, http=client, cache_dir=tmp_path / "cache")


def lock(index: SimpleIndex, *requirements, target: Target = PY313, **kwargs) -> Resolution:
    return resolve(requirements, target, index, **kwargs)


def versions(resolution: Resolution) -> dict[str, str]:
    return {wheel.name: wheel.version for wheel in resolution.wheels}


def project_pages(pypi: PyPIFixture) -> list[str]:
    return sorted(r.path for r in pypi.requests if r.path.startswith("/simple/"))


class TestTarget:
    def test_markers_describe_the_target_not_the_host(self):
        env = PY313.markers()
        assert env["python_version"] == "3.13" != f"{sys.version_info[0]}.{sys.version_info[1]}"
        assert env["python_full_version"] == env["implementation_version"] == "3.13.5"
        assert (env["implementation_name"], env["platform_python_implementation"]) == (
            "cpython",
            "CPython",
        )
        assert (env["sys_platform"], env["platform_system"], env["os_name"]) == (
            "linux",
            "Linux",
            "posix",
        )
        assert env["platform_machine"] == "x86_64"
        assert env["platform_release"] == env["platform_version"] == env["extra"] == ""
        assert PY313.markers("web")["extra"] == "web"

    def test_tags_are_ordered_for_the_target(self):
        tags = [str(t) for t in PY313.tags]
        assert tags[0] == "cp313-cp313-manylinux_2_36_x86_64"
        assert tags.index("cp313-cp313-manylinux_2_17_x86_64") + 1 == tags.index(
            "cp313-cp313-manylinux2014_x86_64"
        )
        for legacy in ("manylinux2014", "manylinux2010", "manylinux1"):
            assert f"cp313-cp313-{legacy}_x86_64" in tags
        abi3, old_abi3 = "cp313-abi3-manylinux_2_17_x86_64", "cp39-abi3-manylinux1_x86_64"
        assert tags.index(abi3) < tags.index(old_abi3) < tags.index("py3-none-any")
        assert tags[-1].endswith("-none-any")

    def test_tags_exclude_other_platforms_and_interpreters(self):
        tags = [str(t) for t in PY313.tags]
        assert not [t for t in tags if "musllinux" in t or t.split("-")[2] == "linux_x86_64"]
        assert not [t for t in tags if t.startswith(("cp311-cp311", "cp314"))]
        assert "cp313-cp313-manylinux_2_37_x86_64" not in tags  # newer than bookworm's glibc
        newer = Target.cpython("3.13.5", glibc=(2, 39))
        assert newer.tag_rank(Tag("cp313", "cp313", "manylinux_2_39_x86_64")) == 0
        assert PY313.tag_rank(Tag("cp311", "cp311", "manylinux_2_17_x86_64")) is None

    def test_describe(self):
        assert PY313.describe() == "cp313 manylinux_2_36 x86_64"

    @pytest.mark.parametrize("version", ["3.13", "3.13.5rc1", "x", "2.7.18"])
    def test_invalid_versions(self, version):
        with pytest.raises(InvalidTarget):
            Target.cpython(version)


class TestResolution:
    def test_transitive_closure(self, pypi, index):
        app = pypi.add_wheel("app", "1.0", requires_dist=["lib>=1"])
        pypi.add_wheel("lib", "1.0", requires_dist=["leaf"])
        lib = pypi.add_wheel("lib", "2.0", requires_dist=["leaf<3", "Typing_Ext"])
        pypi.add_wheel("leaf", "2.5")
        pypi.add_wheel("leaf", "3.0")
        pypi.add_wheel("typing-ext", "4.0")
        result = lock(index, "app==1.0")
        assert versions(result) == {"app": "1.0", "lib": "2.0", "leaf": "2.5", "typing-ext": "4.0"}
        assert result.requirements == ("app==1.0",)
        wheels = result.by_name()
        assert [w.name for w in result.wheels] == sorted(wheels)
        got = wheels["lib"]
        assert (got.filename, got.url) == (lib.filename, pypi.file_url(lib.filename))
        assert (got.sha256, got.size, got.tag) == (lib.sha256, lib.size, "py3-none-any")
        assert got.dependencies == ("leaf", "typing-ext")
        assert got.required_by == ("app",) and not got.direct
        assert wheels["app"].direct and wheels["app"].sha256 == app.sha256

    def test_config_pins_are_accepted(self, pypi, index):
        pypi.add_wheel("app", "1.0", requires_dist=["extra-dep; extra == 'web'"], extras=["web"])
        pypi.add_wheel("extra-dep", "1.0")
        result = lock(index, PackagePin("app", "1.0", ("web",)))
        assert versions(result) == {"app": "1.0", "extra-dep": "1.0"}

    def test_a_broken_requirement_string(self, index):
        with pytest.raises(InvalidRequirementText):
            lock(index, "app==")

    def test_each_page_and_metadata_is_fetched_once(self, pypi, index):
        pypi.add_wheel("app", "1.0", requires_dist=["a", "b"])
        pypi.add_wheel("a", "1.0", requires_dist=["b", "c"])
        pypi.add_wheel("b", "1.0", requires_dist=["c"])
        pypi.add_wheel("c", "1.0")
        lock(index, "app==1.0")
        paths = [r.path for r in pypi.requests]
        assert sorted(paths) == sorted(set(paths))
        assert project_pages(pypi) == ["/simple/a/", "/simple/app/", "/simple/b/", "/simple/c/"]

    def test_pages_and_metadata_are_fetched_ahead(self, pypi, index):
        pypi.add_wheel("app", "1.0", requires_dist=["a", "b"])
        pypi.add_wheel("a", "1.0", requires_dist=["c"])
        pypi.add_wheel("b", "1.0", requires_dist=["c"])
        pypi.add_wheel("c", "1.0")
        threads = []
        fetch, metadata = index.project_files, index.wheel_metadata
        index.project_files = lambda name: threads.append(current_thread().name) or fetch(name)
        index.wheel_metadata = lambda f: threads.append(current_thread().name) or metadata(f)
        assert set(versions(lock(index, "app==1.0"))) == {"app", "a", "b", "c"}
        assert len(threads) == 8  # 4 pages, 4 METADATA: each once
        # the pool fetches ahead (the caller's thread may take a task nobody has started yet)
        assert sum(name.startswith("seal-resolve") for name in threads) >= 4

    def test_output_is_deterministic(self, pypi, index):
        for name in "pqrs":
            pypi.add_wheel(name, "1.0", requires_dist=[n for n in "pqrs" if n > name])
            pypi.add_wheel(name, "1.1", requires_dist=[n for n in "pqrs" if n > name])
        pypi.add_wheel("q", "1.1", tag="cp313-abi3-" + MANYLINUX)
        first = lock(index, "s", "p", "q>=1", jobs=1)
        assert lock(index, "q>=1", "s", "p", jobs=8) == first
        assert repr(lock(index, "p", "q>=1", "s", jobs=4)) == repr(first)
        assert first.by_name()["q"].tag == "cp313-abi3-manylinux_2_17_x86_64"


class TestMarkers:
    def add(self, pypi):
        pypi.add_wheel(
            "app",
            "1.0",
            requires_dist=[
                'old; python_version < "3.12"',
                'win; sys_platform == "win32"',
                'linux-only; sys_platform == "linux" and platform_machine == "x86_64"',
                'new; python_full_version >= "3.13.5"',
                'kernel; platform_release >= "5"',
            ],
        )
        for name in ("old", "win", "linux-only", "new", "kernel"):
            pypi.add_wheel(name, "1.0")

    def test_markers_are_evaluated_for_the_target(self, pypi, index):
        self.add(pypi)
        assert set(versions(lock(index, "app==1.0"))) == {"app", "linux-only", "new"}
        # what was left out was not even looked at, though the host (3.11) matches "old"
        assert project_pages(pypi) == ["/simple/app/", "/simple/linux-only/", "/simple/new/"]

    def test_another_target_gets_other_dependencies(self, pypi, index):
        self.add(pypi)
        assert set(versions(lock(index, "app==1.0", target=PY311))) == {"app", "linux-only", "old"}

    def test_root_markers_are_evaluated_too(self, pypi, index):
        pypi.add_wheel("app", "1.0")
        assert lock(index, 'app==1.0; sys_platform == "win32"').wheels == ()


class TestTags:
    def test_the_best_wheel_for_the_target_is_chosen(self, pypi, index):
        pypi.add_wheel("native", "1.0", tag="cp311-cp311-" + MANYLINUX)
        old = pypi.add_wheel("native", "1.0", tag="cp313-cp313-" + MANYLINUX)
        new = pypi.add_wheel("native", "1.0", tag="cp313-cp313-manylinux_2_28_x86_64")
        pypi.add_wheel("native", "1.0", tag="cp313-cp313-manylinux_2_39_x86_64")  # glibc too new
        pypi.add_wheel("native", "1.0", tag="cp313-cp313-musllinux_1_2_x86_64")
        pypi.add_wheel("native", "1.0", tag="py3-none-any")
        wheel = lock(index, "native==1.0").by_name()["native"]
        assert (wheel.filename, wheel.tag) == (new.filename, "cp313-cp313-manylinux_2_28_x86_64")
        wheel = lock(index, "native==1.0", target=Target.cpython("3.13.5", glibc=(2, 17)))
        assert wheel.by_name()["native"].filename == old.filename

    def test_the_interpreter_decides(self, pypi, index):
        cp311 = pypi.add_wheel("native", "1.0", tag="cp311-cp311-" + MANYLINUX)
        cp313 = pypi.add_wheel("native", "1.0", tag="cp313-cp313-" + MANYLINUX)
        assert lock(index, "native==1.0").by_name()["native"].filename == cp313.filename
        result = lock(index, "native==1.0", target=PY311)
        assert result.by_name()["native"].filename == cp311.filename

    def test_a_version_without_a_usable_wheel_is_passed_over(self, pypi, index):
        pypi.add_wheel("native", "1.0", tag="cp313-cp313-" + MANYLINUX)
        pypi.add_wheel("native", "2.0", tag="cp311-cp311-" + MANYLINUX)
        assert versions(lock(index, "native"))["native"] == "1.0"

    @pytest.mark.parametrize(
        "tags",
        [
            ["cp311-cp311-" + MANYLINUX, "cp312-cp312-" + MANYLINUX],
            ["cp313-cp313-musllinux_1_2_x86_64"],
            ["cp313-cp313-linux_x86_64"],
            ["cp313-cp313-manylinux_2_17_aarch64", "cp313-cp313-win_amd64"],
            [],
        ],
    )
    def test_no_compatible_wheel(self, pypi, index, tags):
        for tag in tags:
            pypi.add_wheel("native", "1.0", tag=tag)
        sdist = pypi.add_sdist("native", "1.0")
        pypi.add_wheel("app", "1.0", requires_dist=["native==1.0"])
        with pytest.raises(NoCompatibleWheel) as info:
            lock(index, "app==1.0")
        error = info.value
        assert error.reason == "no-compatible-wheel"
        assert (error.name, error.version, error.requested_by) == ("native", "1.0", "app 1.0")
        assert "no wheel of native 1.0 for cp313 manylinux_2_36 x86_64" in error.message
        assert "(required by app 1.0)" in error.message
        for filename in [sdist.filename, *(f"native-1.0-{tag}.whl" for tag in tags)]:
            assert filename in error.message
        assert "\n" not in error.message
        assert "sdists comes later" in error.hint

    def test_no_wheel_message_is_truncated_and_names_a_usable_version(self, pypi, index):
        pypi.add_wheel("native", "1.0", tag="py3-none-any")
        for minor in range(5, 13):
            pypi.add_wheel("native", "2.0", tag=f"cp3{minor}-cp3{minor}-{MANYLINUX}")
        with pytest.raises(NoCompatibleWheel) as info:
            lock(index, "native==2.0")
        assert len(info.value.files) == 8
        assert " more" not in info.value.message
        assert "version 1.0 has one" in info.value.hint
        pypi.add_wheel("native", "2.0", tag="cp34-cp34m-manylinux1_x86_64")
        with pytest.raises(NoCompatibleWheel) as info:
            lock(index, "native==2.0")
        assert info.value.message.endswith(" and 1 more")

    def test_backtracks_past_a_version_whose_dependency_has_no_wheel(self, pypi, index):
        pypi.add_wheel("app", "1.0", requires_dist=["lib<2"])
        pypi.add_wheel("app", "2.0", requires_dist=["lib>=2"])
        pypi.add_wheel("lib", "1.0")
        pypi.add_wheel("lib", "2.0", tag="cp311-cp311-" + MANYLINUX)
        assert versions(lock(index, "app")) == {"app": "1.0", "lib": "1.0"}


class TestExtras:
    def add(self, pypi):
        pypi.add_wheel(
            "app",
            "1.0",
            requires_dist=["core", "web-dep>=1; extra == 'web'", "cli-dep; extra == 'CLI'"],
            extras=["web", "cli"],
        )
        for name in ("core", "web-dep", "cli-dep"):
            pypi.add_wheel(name, "1.0")

    def test_an_extra_pulls_its_dependencies(self, pypi, index):
        self.add(pypi)
        result = lock(index, "app[web]==1.0")
        assert set(versions(result)) == {"app", "core", "web-dep"}
        app = result.by_name()["app"]
        assert app.extras == ("web",) and app.dependencies == ("core", "web-dep")
        assert result.by_name()["web-dep"].required_by == ("app",)

    def test_without_the_extra_they_are_absent(self, pypi, index):
        self.add(pypi)
        result = lock(index, "app==1.0")
        assert set(versions(result)) == {"app", "core"}
        assert result.by_name()["app"].extras == ()

    def test_extras_are_normalized_and_combined(self, pypi, index):
        self.add(pypi)
        pypi.add_wheel("tool", "1.0", requires_dist=["App[cli]"])
        result = lock(index, "app[WEB]==1.0", "tool==1.0")
        assert set(versions(result)) == {"app", "core", "web-dep", "cli-dep", "tool"}
        assert result.by_name()["app"].extras == ("cli", "web")

    def test_the_extra_follows_the_base_version(self, pypi, index):
        pypi.add_wheel("app", "1.0", requires_dist=["dep; extra == 'x'"], extras=["x"])
        pypi.add_wheel("app", "2.0", requires_dist=["dep; extra == 'x'"], extras=["x"])
        pypi.add_wheel("dep", "1.0")
        pypi.add_wheel("user", "1.0", requires_dist=["app[x]"])
        assert versions(lock(index, "app==1.0", "user==1.0"))["app"] == "1.0"


class TestVersions:
    def test_yanked_is_skipped(self, pypi, index):
        pypi.add_wheel("lib", "1.0")
        pypi.yank(pypi.add_wheel("lib", "2.0").filename, "broken")
        pypi.add_wheel("app", "1.0", requires_dist=["lib>=1"])
        assert versions(lock(index, "app==1.0"))["lib"] == "1.0"

    def test_yanked_needs_an_exact_pin(self, pypi, index):
        pypi.add_wheel("lib", "1.0")
        yanked = pypi.add_wheel("lib", "2.0")
        pypi.yank(yanked.filename)
        with pytest.raises(NoCompatibleWheel) as info:
            lock(index, "lib>=2")
        assert f"{yanked.filename} (yanked)" in info.value.message
        wheel = lock(index, "lib==2.0").by_name()["lib"]
        assert (wheel.filename, wheel.yanked) == (yanked.filename, True)
        assert lock(index, "lib===2.0").by_name()["lib"].yanked
        with pytest.raises(NoCompatibleWheel):
            lock(index, "lib==2.*")

    def test_requires_python_excludes_a_version(self, pypi, index):
        pypi.add_wheel("lib", "1.0", requires_python=">=3.8")
        new = pypi.add_wheel("lib", "2.0", requires_python=">=3.14")
        assert versions(lock(index, "lib"))["lib"] == "1.0"
        with pytest.raises(NoCompatibleWheel) as info:
            lock(index, "lib==2.0")
        assert f"{new.filename} (requires-python >=3.14)" in info.value.message
        pypi.add_wheel("old", "1.0", requires_python="<3.12")
        assert versions(lock(index, "old", target=PY311)) == {"old": "1.0"}
        with pytest.raises(NoCompatibleWheel):
            lock(index, "old")

    def test_a_file_without_sha256_cannot_be_pinned(self, pypi, index):
        pypi.add_wheel("lib", "1.0")
        unhashed = pypi.add_wheel("lib", "2.0").filename
        files = index.project_files
        index.project_files = lambda name: [
            replace(f, sha256=None) if f.filename == unhashed else f for f in files(name)
        ]
        assert versions(lock(index, "lib"))["lib"] == "1.0"
        with pytest.raises(NoCompatibleWheel, match=r"\(no sha256 listed\)"):
            lock(index, "lib==2.0")

    def test_prereleases_only_when_pinned(self, pypi, index):
        pypi.add_wheel("lib", "1.0")
        pypi.add_wheel("lib", "2.0b1")
        assert versions(lock(index, "lib"))["lib"] == "1.0"
        assert versions(lock(index, "lib==2.0b1"))["lib"] == "2.0b1"
        assert versions(lock(index, "lib>=2.0b1"))["lib"] == "2.0b1"

    def test_newest_within_the_specifiers(self, pypi, index):
        for version in ("1.0", "1.5", "2.0", "10.0"):
            pypi.add_wheel("lib", version)
        assert versions(lock(index, "lib"))["lib"] == "10.0"
        assert versions(lock(index, "lib<10,!=2.0"))["lib"] == "1.5"

    def test_no_matching_version(self, pypi, index):
        for version in ("1.0", "2.0"):
            pypi.add_wheel("lib", version)
        with pytest.raises(NoMatchingVersion) as info:
            lock(index, "lib==9.9")
        assert info.value.reason == "no-matching-version"
        assert "lib==9.9" in info.value.message and "2.0, 1.0" in info.value.message


class TestErrors:
    def test_conflict_names_the_requirements_and_who_asked(self, pypi, index):
        pypi.add_wheel("a", "1.0", requires_dist=["shared<2"])
        pypi.add_wheel("b", "1.0", requires_dist=["shared>=2"])
        pypi.add_wheel("shared", "1.0")
        pypi.add_wheel("shared", "2.0")
        with pytest.raises(ResolutionConflict) as info:
            lock(index, "a==1.0", "b==1.0")
        error = info.value
        assert error.reason == "resolution-conflict"
        assert set(error.conflicts["shared"]) == {("shared<2", "a 1.0"), ("shared>=2", "b 1.0")}
        assert "conflicting requirements for shared:" in error.message
        assert "shared<2 (from a 1.0)" in error.message and "\n" not in error.message

    def test_conflict_with_a_root_pin(self, pypi, index):
        pypi.add_wheel("a", "1.0", requires_dist=["shared<2"])
        pypi.add_wheel("shared", "1.0")
        pypi.add_wheel("shared", "2.0")
        with pytest.raises(ResolutionConflict) as info:
            lock(index, "a==1.0", "shared==2.0")
        assert "shared==2.0 (from the requested packages)" in info.value.message

    def test_broken_metadata_names_the_wheel(self, pypi, index):
        wheel = pypi.add_wheel("app", "1.0", requires_dist=["ok", "not a requirement ((("])
        pypi.add_wheel("ok", "1.0")
        with pytest.raises(InvalidMetadata) as info:
            lock(index, "app==1.0")
        assert info.value.reason == "invalid-wheel-metadata"
        assert wheel.filename in info.value.message and "(((" in info.value.message

    def test_unknown_project(self, pypi, index):
        pypi.add_wheel("app", "1.0", requires_dist=["nope>=1"])
        with pytest.raises(UnknownProject) as info:
            lock(index, "app==1.0")
        assert info.value.reason == "unknown-project"
        assert "'nope'" in info.value.message and "required by app 1.0" in info.value.message
        with pytest.raises(UnknownProject, match="required by the requested packages"):
            lock(index, "nope==1.0")


@pytest.mark.network
def test_real_pypi_fastapi_uvicorn(tmp_path):
    expected = {
        "fastapi", "uvicorn", "starlette", "pydantic", "pydantic-core", "anyio", "sniffio",
        "idna", "typing-extensions", "annotated-types", "click", "h11",
    }  # fmt: skip
    with HttpClient() as http:
        timings = []
        for _ in range(2):  # cold (empty metadata cache), then warm
            index = SimpleIndex(http=http, cache_dir=tmp_path / "cache")
            start = time.perf_counter()
            result = lock(index, "fastapi==0.104.1", "uvicorn==0.24.0")
            timings.append(time.perf_counter() - start)
        print(
            f"\nresolve fastapi+uvicorn for 3.13.5: cold {timings[0]:.2f}s, warm {timings[1]:.2f}s"
        )
        wheels = result.by_name()
        assert expected <= set(wheels)
        assert (wheels["fastapi"].version, wheels["uvicorn"].version) == ("0.104.1", "0.24.0")
        core = wheels["pydantic-core"]
        assert core.tag.startswith("cp313-cp313-manylinux") and core.tag.endswith("_x86_64")
        fresh = SimpleIndex(http=http)  # no cache: what PyPI lists now
        for wheel in result.wheels:
            listed = {f.filename: f.sha256 for f in fresh.project_files(wheel.name)}
            assert wheel.sha256 == listed[wheel.filename], wheel.filename
            assert wheel.url.startswith("https://files.pythonhosted.org/")
            # and the bytes behind the URL have that hash (raises HashMismatch otherwise)
            download = http.download(wheel.url, io.BytesIO(), wheel.sha256, wheel.size)
            assert download.sha256 == wheel.sha256
