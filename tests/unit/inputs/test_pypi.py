"""seal.daemon.inputs.pypi against the local PyPI fixture (and one test against real PyPI)."""

from __future__ import annotations

import io
import zipfile

import pytest
from packaging.tags import Tag
from packaging.version import Version
from pypifixture import FAST_RETRY, PyPIFixture, build_wheel

from seal.daemon.inputs.http import HashMismatch, HttpClient
from seal.daemon.inputs.pypi import (
    BadIndexResponse,
    File,
    MetadataUnavailable,
    ProjectNotFound,
    SimpleIndex,
    normalize_name,
)

MIB = 1 << 20


@pytest.fixture
def pypi_server(tmp_path):
    with PyPIFixture(tmp_path / "pypi") as server:
        yield server


@pytest.fixture
def index(pypi_server, tmp_path):
    with HttpClient(retry=FAST_RETRY, timeout=10) as client:
        yield SimpleIndex(pypi_server.index_url, http=client, cache_dir=tmp_path / "cache")


def only(files: list[File], filename: str) -> File:
    (found,) = [f for f in files if f.filename == filename]
    return found


class TestProjectFiles:
    def test_parses_every_field(self, pypi_server, index):
        wheel = pypi_server.add_wheel(
            "demo", "1.0", requires_python=">=3.9", tag="cp313-cp313-manylinux_2_17_x86_64"
        )
        sdist = pypi_server.add_sdist("demo", "1.0")
        files = index.project_files("demo")
        assert sorted(f.filename for f in files) == sorted([wheel.filename, sdist.filename])
        got = only(files, wheel.filename)
        assert got.url == pypi_server.file_url(wheel.filename)  # "../../files/x" resolved
        assert got.sha256 == wheel.sha256
        assert got.size == wheel.size
        assert got.requires_python == ">=3.9"
        assert got.upload_time == wheel.upload_time
        assert got.metadata_listed and got.metadata_sha256 == wheel.metadata_sha256
        assert not got.yanked and got.yanked_reason is None
        assert got.is_wheel and not got.is_sdist
        name, version, build, tags = got.wheel_info()
        assert (name, version, build) == ("demo", Version("1.0"), ())
        assert tags == {Tag("cp313", "cp313", "manylinux_2_17_x86_64")}
        source = only(files, sdist.filename)
        assert source.is_sdist and source.sdist_info() == ("demo", Version("1.0"))
        assert not source.metadata_listed

    def test_absolute_urls_are_kept(self, pypi_server, index):
        pypi_server.relative_urls = False
        wheel = pypi_server.add_wheel("demo", "1.0")
        assert index.project_files("demo")[0].url == pypi_server.file_url(wheel.filename)

    def test_relative_urls_resolve_against_the_page(self):
        entry = {"filename": "a-1.0.tar.gz", "url": "../../f/a-1.0.tar.gz#sha256=" + "ab" * 32}
        got = File.from_json(entry, "https://example.org/simple/a/")
        assert got.url == "https://example.org/f/a-1.0.tar.gz"
        assert got.sha256 == "ab" * 32

    @pytest.mark.parametrize(
        "url",
        [
            "https://files.example.org/p/a-1.0.tar.gz",
            "https://files.example.org/p/a-1.0.tar.gz#sha256=" + "cd" * 32,
            "http://files.example.org/p/../a-1.0.tar.gz?x=1",
            "https://files.example.org/p/a-1.0.tar.gz?",
            "//files.example.org/p/a-1.0.tar.gz",
            "/p/a-1.0.tar.gz",
        ],
    )
    def test_urls_as_urljoin_gives_them(self, url):
        from urllib.parse import urldefrag, urljoin

        page = "https://example.org/simple/a/"
        entry = {"filename": "a-1.0.tar.gz", "url": url, "hashes": {"sha256": "AB" * 32}}
        got = File.from_json(entry, page)
        assert got.url == urldefrag(urljoin(page, url)).url
        assert got.sha256 == "ab" * 32

    @pytest.mark.parametrize("digest", ["ab" * 31, "ab" * 33, "zz" * 32, "ab" * 31 + "a\n"])
    def test_malformed_sha256_is_refused(self, digest):
        entry = {"filename": "a-1.0.tar.gz", "url": "https://f/a", "hashes": {"sha256": digest}}
        with pytest.raises(ValueError, match="not a sha256"):
            File.from_json(entry, "https://example.org/simple/a/")

    @pytest.mark.parametrize("spelling", ["Demo.Pkg", "demo_pkg", "DEMO--PKG", "demo-pkg"])
    def test_names_are_normalized(self, pypi_server, index, spelling):
        pypi_server.add_wheel("demo-pkg", "1.0")
        assert len(index.project_files(spelling)) == 1
        assert [r.path for r in pypi_server.requests] == ["/simple/demo-pkg/"]
        assert (
            pypi_server.requests[0]
            .headers["accept"]
            .startswith("application/vnd.pypi.simple.v1+json")
        )

    def test_normalize_name(self):
        assert normalize_name("Foo.Bar__baz-Qux") == "foo-bar-baz-qux"

    @pytest.mark.parametrize("reason", [None, "broken build"])
    def test_yanked_is_reported(self, pypi_server, index, reason):
        wheel = pypi_server.add_wheel("demo", "1.0")
        pypi_server.yank(wheel.filename, reason)
        (got,) = index.project_files("demo")
        assert got.yanked
        assert got.yanked_reason == reason

    @pytest.mark.parametrize("key", ["core-metadata", "dist-info-metadata", None])
    def test_metadata_keys(self, pypi_server, index, key):
        pypi_server.metadata_key = key
        wheel = pypi_server.add_wheel("demo", "1.0")
        (got,) = index.project_files("demo")
        assert got.metadata_listed == (key is not None)
        assert got.metadata_sha256 == (wheel.metadata_sha256 if key else None)

    def test_unknown_project(self, pypi_server, index):
        with pytest.raises(ProjectNotFound) as info:
            index.project_files("nope")
        assert info.value.reason == "pypi-project-not-found"
        assert "'nope'" in info.value.message

    def test_an_html_index_is_refused(self, pypi_server, index):
        pypi_server.add_wheel("demo", "1.0")
        pypi_server.page_content_type = "text/html"
        with pytest.raises(BadIndexResponse) as info:
            index.project_files("demo")
        assert "not PEP 691 JSON" in info.value.message
        assert info.value.hint

    def test_index_retries_after_500(self, pypi_server, index):
        pypi_server.add_wheel("demo", "1.0")
        pypi_server.fail("/simple/demo/", times=2)
        assert len(index.project_files("demo")) == 1


class TestWheelMetadata:
    def test_pep658_file_is_used_when_served(self, pypi_server, index):
        wheel = pypi_server.add_wheel("demo", "1.0", requires_dist=["idna>=3"])
        (file,) = index.project_files("demo")
        assert index.wheel_metadata(file) == wheel.metadata
        assert pypi_server.requests_for(wheel.filename) == []
        assert len(pypi_server.requests_for(wheel.filename + ".metadata")) == 1

    def test_pep658_file_is_tried_even_when_not_listed(self, pypi_server, index):
        pypi_server.metadata_key = None
        wheel = pypi_server.add_wheel("demo", "1.0")
        (file,) = index.project_files("demo")
        assert index.wheel_metadata(file) == wheel.metadata
        assert pypi_server.requests_for(wheel.filename) == []

    def test_pep658_hash_is_checked(self, pypi_server, index):
        wheel = pypi_server.add_wheel("demo", "1.0")
        pypi_server.corrupt(wheel.filename + ".metadata")
        (file,) = index.project_files("demo")
        with pytest.raises(HashMismatch) as info:
            index.wheel_metadata(file)
        assert info.value.url == file.metadata_url
        assert info.value.expected == wheel.metadata_sha256
        assert file.metadata_url in info.value.message
        assert not (index.cache_dir / wheel.sha256[:2]).exists()  # nothing cached

    @pytest.mark.parametrize("metadata_first", [False, True])
    def test_range_fallback_reads_a_small_part(self, pypi_server, index, metadata_first):
        wheel = pypi_server.add_wheel(
            "demo", "1.0", requires_dist=["a", "b; extra == 'x'"], extras=["x"],
            padding=MIB, metadata_first=metadata_first,
        )  # fmt: skip
        pypi_server.no_metadata.add(wheel.filename)
        (file,) = index.project_files("demo")
        assert index.wheel_metadata(file) == wheel.metadata
        served = pypi_server.requests_for(wheel.filename)
        assert served and all(r.status == 206 and r.range for r in served)
        assert len(served) <= 3
        assert pypi_server.bytes_sent(wheel.filename) < 200_000 < MIB < wheel.size

    def test_full_download_when_range_is_ignored(self, pypi_server, index):
        wheel = pypi_server.add_wheel("demo", "1.0", padding=100_000)
        pypi_server.serve_metadata = False
        pypi_server.honor_range = False
        (file,) = index.project_files("demo")
        assert index.wheel_metadata(file) == wheel.metadata
        statuses = [(r.status, r.range is None) for r in pypi_server.requests_for(wheel.filename)]
        assert statuses == [(200, False), (200, True)]  # Range ignored, then a plain GET

    def test_full_download_is_hash_checked(self, pypi_server, index):
        wheel = pypi_server.add_wheel("demo", "1.0")
        pypi_server.serve_metadata = False
        pypi_server.honor_range = False
        pypi_server.corrupt(wheel.filename)
        (file,) = index.project_files("demo")
        with pytest.raises(HashMismatch) as info:
            index.wheel_metadata(file)
        assert (info.value.url, info.value.expected) == (file.url, wheel.sha256)

    def test_cache_hit_makes_no_request(self, pypi_server, index, tmp_path):
        wheel = pypi_server.add_wheel("demo", "1.0")
        pypi_server.serve_metadata = False
        (file,) = index.project_files("demo")
        first = index.wheel_metadata(file)
        cached = index.cache_dir / wheel.sha256[:2] / f"{wheel.sha256}.metadata"
        assert cached.read_bytes() == first == wheel.metadata
        pypi_server.clear_log()
        again = SimpleIndex(pypi_server.index_url, http=index.http, cache_dir=index.cache_dir)
        assert again.wheel_metadata(file) == first
        assert pypi_server.requests == []
        assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temp files left

    def test_a_wheel_without_metadata_is_reported(self, pypi_server, index):
        broken = build_wheel("demo", "1.0")
        broken.metadata = None  # served without a .metadata file
        broken.data = _drop_member(broken.data, "demo-1.0.dist-info/METADATA")
        pypi_server.add(broken)
        (file,) = index.project_files("demo")
        with pytest.raises(MetadataUnavailable) as info:
            index.wheel_metadata(file)
        assert info.value.reason == "wheel-metadata-unavailable"
        assert file.filename in info.value.message

    def test_metadata_of_another_project_is_refused(self, pypi_server, index):
        other = build_wheel("other", "1.0")
        liar = build_wheel("demo", "1.0")
        liar.metadata = other.metadata
        pypi_server.add(liar)
        (file,) = index.project_files("demo")
        with pytest.raises(MetadataUnavailable, match="names 'other'"):
            index.wheel_metadata(file)

    def test_sdists_are_refused(self, pypi_server, index):
        pypi_server.add_sdist("demo", "1.0")
        (file,) = index.project_files("demo")
        with pytest.raises(ValueError, match="not a wheel"):
            index.wheel_metadata(file)


def _drop_member(data: bytes, name: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            if info.filename != name:
                dst.writestr(info, src.read(info))
    return out.getvalue()


@pytest.mark.network
def test_real_pypi_fastapi(tmp_path):
    with HttpClient() as client:
        index = SimpleIndex(http=client, cache_dir=tmp_path)
        files = index.project_files("FastAPI")
        wheel = only(files, "fastapi-0.104.1-py3-none-any.whl")
        assert wheel.sha256 == "752dc31160cdbd0436bb93bad51560b57e525cbb1d4bbf6f4904ceee75548241"
        assert wheel.url.startswith("https://files.pythonhosted.org/")
        assert wheel.requires_python == ">=3.8"
        assert only(files, "fastapi-0.104.1.tar.gz").is_sdist
        metadata = index.wheel_metadata(wheel)
        assert b"Name: fastapi\n" in metadata and b"Version: 0.104.1\n" in metadata
        assert b"Requires-Dist: starlette<0.28.0,>=0.27.0" in metadata
        # the range path on the real CDN (files.pythonhosted.org answers 206) reads the same
        assert index._from_wheel(wheel) == metadata
