"""seal.daemon.inputs.http against the local PyPI fixture: real HTTP over loopback."""

from __future__ import annotations

import hashlib
import io
import socket
import threading

import pytest
from pypifixture import FAST_RETRY, PyPIFixture

from seal.daemon.inputs.http import (
    USER_AGENT,
    ConnectionFailed,
    HashMismatch,
    HttpClient,
    HttpStatusError,
    NotFound,
    RangeNotSupported,
    RetryPolicy,
    SizeMismatch,
    TruncatedBody,
)


@pytest.fixture
def pypi_server(tmp_path):
    with PyPIFixture(tmp_path / "pypi") as server:
        yield server


@pytest.fixture
def fast_http():
    with HttpClient(retry=FAST_RETRY, timeout=10) as client:
        yield client


@pytest.fixture
def wheel(pypi_server):
    return pypi_server.add_wheel("demo", "1.0", padding=200_000)


class TestGet:
    def test_body_status_headers_and_user_agent(self, pypi_server, fast_http, wheel):
        url = pypi_server.file_url(wheel.filename)
        response = fast_http.get(url)
        assert response.status == 200
        assert response.body == wheel.data
        assert response.headers["content-length"] == str(wheel.size)
        assert response.url == url
        (request,) = pypi_server.requests_for(wheel.filename)
        assert request.headers["user-agent"] == USER_AGENT
        assert USER_AGENT.startswith("seal/")

    def test_keep_alive_reuses_one_connection(self, pypi_server, fast_http, wheel):
        for _ in range(3):
            fast_http.get(pypi_server.file_url(wheel.filename))
            fast_http.get(pypi_server.index_url)
        ports = {r.port for r in pypi_server.requests}
        assert len(pypi_server.requests) == 6
        assert len(ports) == 1

    def test_concurrent_use_is_bounded_per_host(self, pypi_server, wheel):
        client = HttpClient(per_host=3)
        errors = []

        def worker():
            try:
                for _ in range(5):
                    assert client.get(pypi_server.file_url(wheel.filename)).body == wheel.data
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        client.close()
        assert errors == []
        assert len(pypi_server.requests) == 40
        assert len({r.port for r in pypi_server.requests}) <= 3

    def test_retries_after_500s(self, pypi_server, fast_http, wheel):
        pypi_server.fail(wheel.filename, times=3)
        assert fast_http.get(pypi_server.file_url(wheel.filename)).body == wheel.data
        statuses = [r.status for r in pypi_server.requests_for(wheel.filename)]
        assert statuses == [500, 500, 500, 200]

    def test_gives_up_after_the_policy_attempts(self, pypi_server, fast_http, wheel):
        pypi_server.fail(wheel.filename, times=10, status=503)
        with pytest.raises(HttpStatusError) as info:
            fast_http.get(pypi_server.file_url(wheel.filename))
        assert info.value.status == 503
        assert info.value.temporary
        assert info.value.reason == "http-status"
        assert len(pypi_server.requests_for(wheel.filename)) == 4

    def test_429_is_retried(self, pypi_server, fast_http, wheel):
        pypi_server.fail(wheel.filename, times=1, status=429)
        assert fast_http.get(pypi_server.file_url(wheel.filename)).status == 200

    @pytest.mark.parametrize("status", [400, 403, 404])
    def test_other_4xx_are_not_retried(self, pypi_server, fast_http, wheel, status):
        pypi_server.fail(wheel.filename, times=1, status=status)
        with pytest.raises(HttpStatusError) as info:
            fast_http.get(pypi_server.file_url(wheel.filename))
        assert info.value.status == status
        assert isinstance(info.value, NotFound) == (status == 404)
        assert len(pypi_server.requests_for(wheel.filename)) == 1

    def test_redirects_are_followed(self, pypi_server, fast_http, wheel):
        response = fast_http.get(pypi_server.url + "simple/Demo")  # 301 to /simple/demo/
        assert response.url == pypi_server.index_url + "demo/"
        assert b'"demo"' in response.body

    def test_connection_refused_is_retried_then_reported(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # closed again before the client connects
        client = HttpClient(retry=RetryPolicy(attempts=2, base_delay=0.001))
        with pytest.raises(ConnectionFailed) as info:
            client.get(f"http://127.0.0.1:{port}/x")
        assert info.value.reason == "http-connection-failed"
        assert info.value.temporary
        assert str(port) in info.value.message
        assert "\n" not in info.value.message


class TestRange:
    def test_reads_a_slice(self, pypi_server, fast_http, wheel):
        got = fast_http.get_range(pypi_server.file_url(wheel.filename), 100, 1100)
        assert (got.start, got.data, got.total) == (100, wheel.data[100:1100], wheel.size)
        assert pypi_server.requests_for(wheel.filename)[0].status == 206

    def test_reads_a_suffix(self, pypi_server, fast_http, wheel):
        got = fast_http.get_range(pypi_server.file_url(wheel.filename), -500)
        assert got.data == wheel.data[-500:]
        assert got.start == wheel.size - 500
        assert got.total == wheel.size

    def test_ignored_range_is_reported(self, pypi_server, fast_http, wheel):
        pypi_server.honor_range = False
        with pytest.raises(RangeNotSupported) as info:
            fast_http.get_range(pypi_server.file_url(wheel.filename), 0, 10)
        assert info.value.reason == "http-range-ignored"
        assert len(pypi_server.requests_for(wheel.filename)) == 1  # not retried


class TestDownload:
    def test_streams_and_hashes(self, pypi_server, fast_http, wheel):
        out = io.BytesIO()
        got = fast_http.download(pypi_server.file_url(wheel.filename), out, wheel.sha256)
        assert out.getvalue() == wheel.data
        assert (got.sha256, got.size) == (wheel.sha256, wheel.size)

    def test_truncated_body_is_an_error(self, pypi_server, wheel):
        pypi_server.truncate(wheel.filename)
        client = HttpClient(retry=RetryPolicy(attempts=1))
        with pytest.raises(TruncatedBody) as info:
            client.download(pypi_server.file_url(wheel.filename), io.BytesIO())
        assert info.value.expected == wheel.size
        assert info.value.got == wheel.size // 2
        assert info.value.temporary

    def test_truncated_body_succeeds_on_retry(self, pypi_server, fast_http, wheel):
        pypi_server.truncate(wheel.filename, times=2)
        out = io.BytesIO(b"kept")
        out.seek(4)
        got = fast_http.download(pypi_server.file_url(wheel.filename), out, wheel.sha256)
        assert got.sha256 == wheel.sha256
        assert out.getvalue() == b"kept" + wheel.data  # each retry restarts where it began
        assert len(pypi_server.requests_for(wheel.filename)) == 3

    def test_short_of_the_expected_size_is_truncated(self, pypi_server, wheel):
        client = HttpClient(retry=RetryPolicy(attempts=1))
        with pytest.raises(TruncatedBody):
            client.download(
                pypi_server.file_url(wheel.filename), io.BytesIO(), expected_size=wheel.size + 1
            )

    def test_longer_than_the_expected_size_is_a_mismatch(self, pypi_server, fast_http, wheel):
        with pytest.raises(SizeMismatch) as info:
            fast_http.download(
                pypi_server.file_url(wheel.filename), io.BytesIO(), expected_size=wheel.size - 1
            )
        assert info.value.reason == "size-mismatch"
        assert len(pypi_server.requests_for(wheel.filename)) == 1

    def test_hash_mismatch_names_url_expected_and_actual(self, pypi_server, fast_http, wheel):
        pypi_server.corrupt(wheel.filename)
        url = pypi_server.file_url(wheel.filename)
        with pytest.raises(HashMismatch) as info:
            fast_http.download(url, io.BytesIO(), wheel.sha256, artifact="demo 1.0")
        err = info.value
        actual = hashlib.sha256(_flipped(wheel.data)).hexdigest()
        assert (err.url, err.expected, err.actual) == (url, wheel.sha256, actual)
        for part in (url, wheel.sha256, actual, "demo 1.0"):
            assert part in err.message
        assert err.reason == "hash-mismatch"
        assert not err.temporary
        assert len(pypi_server.requests_for(wheel.filename)) == 1  # not retried


def _flipped(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
