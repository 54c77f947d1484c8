"""seal.daemon.inputs.lockfile: the lock's text form (round trip, canonical bytes, strict reading)
and check(), which backs ``seal lock --check``."""

from __future__ import annotations

import dataclasses
import random
import tomllib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from seal.daemon.inputs.config import ImageConfig, parse_config
from seal.daemon.inputs.lockfile import (
    LOCK_VERSION,
    Artifact,
    DebianSource,
    Lock,
    LockError,
    Sources,
    check,
    config_fingerprint,
    dumps,
    loads,
)
from seal.daemon.inputs.tomlwrite import toml_string

CONFIG = """\
name: python-fastapi
python_version: 3.13.5
packages:
  fastapi: 0.104.1
  uvicorn[standard]: 0.24.0
build_type: hermetic
base: [ca-certificates, tzdata]
cmd: [uvicorn, app:app]
env:
  MODE: prod
"""
FPR = "7169605F62C751356D054A26A821E680E5FA6305"
DEBIAN_KEY = "4D64FEC119C2029067D6E791F8D2585B8783D481"
POOL = "https://deb.debian.org/debian/pool/main"


def config(text: str = CONFIG) -> ImageConfig:
    return parse_config(text, "image.yaml")


def artifacts() -> list[Artifact]:
    return [
        Artifact(
            "wheel", "fastapi", "0.104.1", "fastapi-0.104.1-py3-none-any.whl",
            ("https://files.pythonhosted.org/packages/f3/fastapi-0.104.1-py3-none-any.whl",),
            "1" * 64, 92_669, "python",
            details={"tags": ("py3-none-any",), "requires": ("anyio<4,>=3.7.1", "pydantic!=1.8")},
        ),
        Artifact(
            "wheel", "uvicorn", "0.24.0", "uvicorn-0.24.0-py3-none-any.whl",
            ("https://files.pythonhosted.org/packages/a1/uvicorn-0.24.0-py3-none-any.whl",),
            "2" * 64, 59_575, "python",
        ),
        Artifact(
            "deb", "libc6", "2.36-9+deb12u10", "libc6_2.36-9+deb12u10_amd64.deb",
            (f"{POOL}/g/glibc/libc6_2.36-9+deb12u10_amd64.deb",
             "https://mirror.example/debian/pool/main/g/glibc/libc6_2.36-9+deb12u10_amd64.deb"),
            "3" * 64, 2_757_936, "runtime",
            details={"architecture": "amd64", "source": "glibc"},
        ),
        Artifact(
            "deb", "libc6", "2.36-9+deb12u10", "libc6_2.36-9+deb12u10_amd64.deb",
            (f"{POOL}/g/glibc/libc6_2.36-9+deb12u10_amd64.deb",),
            "3" * 64, 2_757_936, "toolchain",
            details={"architecture": "amd64", "source": "glibc"},
        ),
        Artifact(
            "cpython-source", "cpython", "3.13.5", "python3.13_3.13.5.orig.tar.xz",
            (f"{POOL}/p/python3.13/python3.13_3.13.5.orig.tar.xz",),
            "4" * 64, 22_859_284, "cpython", signer=FPR,
            signature="python3.13_3.13.5.orig.tar.xz.asc",
        ),
        Artifact(
            "signature", "cpython", "3.13.5", "python3.13_3.13.5.orig.tar.xz.asc",
            (f"{POOL}/p/python3.13/python3.13_3.13.5.orig.tar.xz.asc",),
            "5" * 64, 963, "cpython",
        ),
        Artifact(
            "signing-key", "cpython", "3.13.5", "signing-key.asc",
            ("https://deb.debian.org/debian/pool/main/p/python3.13/python3.13_3.13.5-2.debian.tar.xz",),  # noqa: E501
            "6" * 64, 7_000, "cpython", details={"fingerprint": FPR},
        ),
    ]  # fmt: skip


def debian() -> DebianSource:
    return DebianSource(
        mirror="https://deb.debian.org/debian",
        suite="stable",
        codename="bookworm",
        architecture="amd64",
        components=("main",),
        date=datetime(2025, 7, 19, 9, 28, 7, tzinfo=UTC),
        inrelease_url="https://deb.debian.org/debian/dists/bookworm/InRelease",
        inrelease_sha256="7" * 64,
        inrelease_size=151_845,
        signers=(DEBIAN_KEY, "B8B80B5B623EAB6AD8775C45B7C5D7D6350947F8"),
    )


def make_lock(cfg: ImageConfig | None = None, arts: list[Artifact] | None = None) -> Lock:
    return Lock.for_config(
        cfg or config(),
        target={"platform": "linux/amd64", "glibc": "2.36", "python_tag": "cp313"},
        sources=Sources("https://pypi.org/simple/", "https://deb.debian.org/debian", (debian(),)),
        artifacts=artifacts() if arts is None else arts,
        generator="seal 0.1.0",
    )


def load_error(text: str) -> LockError:
    with pytest.raises(LockError) as info:
        loads(text, "image.lock")
    return info.value


def line_of(text: str, needle: str, after: int = 0) -> int:
    """1-based line of the first line containing ``needle`` past line ``after``."""
    for number, line in enumerate(text.splitlines(), 1):
        if number > after and needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the text")


def header_before(text: str, line: int) -> int:
    """The line of the last ``[[artifact]]`` header before ``line``."""
    headers = [n for n, t in enumerate(text.splitlines(), 1) if t == "[[artifact]]" and n < line]
    return headers[-1]


class TestRoundTrip:
    def test_model_survives_the_text(self):
        lock = make_lock()
        assert loads(dumps(lock), "image.lock") == lock

    def test_text_survives_the_model(self):
        text = dumps(make_lock())
        assert dumps(loads(text, "image.lock")) == text

    def test_text_is_toml_with_a_version_header_and_a_trailing_newline(self):
        text = dumps(make_lock())
        data = tomllib.loads(text)
        assert data["lock_version"] == LOCK_VERSION
        assert len(data["artifact"]) == 7
        assert text.endswith("]\n") or text.endswith('"\n')
        assert not text.endswith("\n\n")

    def test_artifacts_are_sorted_by_role_kind_name_version_filename(self):
        data = tomllib.loads(dumps(make_lock()))
        fields = ("role", "kind", "name", "version", "filename")
        keys = [tuple(a[f] for f in fields) for a in data["artifact"]]
        assert keys == sorted(keys)
        assert [a["role"] for a in data["artifact"]][:3] == ["cpython"] * 3

    def test_keys_come_in_a_fixed_order(self):
        data = tomllib.loads(dumps(make_lock()))
        assert list(data) == [
            "lock_version",
            "generator",
            "config",
            "target",
            "sources",
            "artifact",
        ]
        wheel = next(a for a in data["artifact"] if a["kind"] == "wheel")
        assert list(wheel) == [
            "kind", "name", "version", "role", "filename", "sha256", "size", "urls", "details",
        ]  # fmt: skip

    def test_no_timestamp_but_the_inrelease_date(self):
        text = dumps(make_lock())
        dates = [
            line for line in text.splitlines() if "T" in line and ":" in line and "= 20" in line
        ]
        assert dates == ["date = 2025-07-19T09:28:07Z"]

    def test_empty_lock_round_trips(self):
        lock = dataclasses.replace(make_lock(arts=[]), sources=Sources())
        text = dumps(lock)
        assert "[[artifact]]" not in text
        assert loads(text, "image.lock") == lock

    @given(st.text())
    def test_any_text_is_written_as_a_toml_string(self, value):
        assert tomllib.loads(f"x = {toml_string(value)}\n")["x"] == value

    def test_odd_characters_in_details_round_trip(self):
        odd = 'quote " back \\ tab \t newline \n del \x7f bell \x07 é 🐍'
        arts = artifacts()
        arts[1] = dataclasses.replace(arts[1], details={"summary": odd, "list": (odd, "")})
        lock = make_lock(arts=arts)
        assert loads(dumps(lock), "image.lock") == lock


class TestDeterministic:
    @pytest.mark.parametrize("seed", range(5))
    def test_same_bytes_whatever_the_input_order(self, seed):
        rng = random.Random(seed)
        reference = dumps(make_lock())
        arts = artifacts()
        rng.shuffle(arts)
        arts = [
            dataclasses.replace(
                a, details=dict(rng.sample(list(a.details.items()), len(a.details)))
            )
            for a in arts
        ]
        shuffled_yaml = CONFIG.replace(
            "  fastapi: 0.104.1\n  uvicorn[standard]: 0.24.0\n",
            "  uvicorn[standard]: 0.24.0\n  fastapi: 0.104.1\n",
        ).replace("[ca-certificates, tzdata]", "[tzdata, ca-certificates]")
        deb = dataclasses.replace(debian(), signers=tuple(reversed(debian().signers)))
        lock = Lock.for_config(
            config(shuffled_yaml),
            target={"python_tag": "cp313", "glibc": "2.36", "platform": "linux/amd64"},
            sources=Sources("https://pypi.org/simple/", "https://deb.debian.org/debian", (deb,)),
            artifacts=arts,
            generator="seal 0.1.0",
        )
        assert dumps(lock) == reference

    def test_one_changed_wheel_changes_few_lines(self):
        before = dumps(make_lock()).splitlines()
        arts = artifacts()
        arts[1] = dataclasses.replace(arts[1], sha256="8" * 64, size=60_000)
        after = dumps(make_lock(arts=arts)).splitlines()
        assert len(before) == len(after)
        assert sum(a != b for a, b in zip(before, after, strict=True)) == 2


class TestStrictLoading:
    def test_unknown_top_level_key(self):
        text = dumps(make_lock()).replace("generator =", "colour = 1\ngenerator =")
        error = load_error(text)
        assert error.reason == "lock-invalid"
        assert "unknown key 'colour'" in str(error)
        assert error.line == line_of(text, "colour")

    def test_unknown_key_in_an_artifact_names_it_and_its_line(self):
        text = dumps(make_lock()).replace('role = "python"\n', 'role = "python"\nmirror = "x"\n', 1)
        error = load_error(text)
        assert "unknown key 'mirror'" in error.message
        assert "wheel fastapi 0.104.1" in error.message
        assert error.line == line_of(text, 'mirror = "x"')
        assert str(error).startswith(f"image.lock:{error.line}: ")

    def test_missing_key(self):
        text = dumps(make_lock()).replace("size = 59575\n", "")
        error = load_error(text)
        assert "missing key 'size'" in error.message
        assert "uvicorn" in error.message

    @pytest.mark.parametrize(
        "bad", ["2" * 63, "2" * 65, "A" * 64, "g" * 64, "sha256:" + "2" * 64], ids=str.__len__
    )
    def test_bad_hash(self, bad):
        text = dumps(make_lock()).replace(f'sha256 = "{"2" * 64}"', f'sha256 = "{bad}"')
        error = load_error(text)
        assert error.reason == "lock-invalid"
        assert "sha256" in error.message and "uvicorn" in error.message
        assert error.line == header_before(text, line_of(text, f'sha256 = "{bad}"'))

    def test_negative_size(self):
        text = dumps(make_lock()).replace("size = 59575", "size = -1")
        error = load_error(text)
        assert "size -1 is negative" in error.message

    @pytest.mark.parametrize("value", ['"12"', "1.5", "true"])
    def test_size_of_the_wrong_type(self, value):
        text = dumps(make_lock()).replace("size = 59575", f"size = {value}")
        error = load_error(text)
        assert "'size' must be an integer" in error.message
        assert error.line == line_of(text, f"size = {value}")

    def test_newer_lock_version_is_a_clear_error(self):
        text = dumps(make_lock()).replace("lock_version = 1", "lock_version = 2")
        text = text.replace("[config]", "future = true\n[config]")  # newer keys do not matter
        error = load_error(text)
        assert error.reason == "lock-version-unsupported"
        assert "newer seal" in error.message
        assert "upgrade seal" in error.hint

    @pytest.mark.parametrize("value", ["0", '"1"', None])
    def test_missing_or_bad_lock_version(self, value):
        old = "lock_version = 1\n"
        text = dumps(make_lock()).replace(old, "" if value is None else f"lock_version = {value}\n")
        assert load_error(text).reason == "lock-invalid"

    def test_not_toml(self):
        text = dumps(make_lock()).replace('kind = "deb"', "kind = deb", 1)
        error = load_error(text)
        assert "not valid TOML" in error.message
        assert error.line == line_of(text, "kind = deb")

    @pytest.mark.parametrize(
        ("old", "new", "words"),
        [
            ('kind = "wheel"', 'kind = "egg"', "unknown kind 'egg'"),
            ('role = "python"', 'role = "runtime"', "role 'runtime' does not fit kind 'wheel'"),
            (f'signer = "{FPR}"', 'signer = "A821E680E5FA6305"', "not an OpenPGP fingerprint"),
            ('urls = ["https://files', 'urls = ["ftp://files', "is not http(s) or file"),
            ('"py3-none-any"]', '"py3-none-any", 3]', "must be text or a list of text"),
            ('filename = "uvicorn-0.24.0-py3-none-any.whl"', 'filename = "../x.whl"', "plain file"),
            ('date = 2025-07-19T09:28:07Z', 'date = 2025-07-19T09:28:07', "no time zone"),
            ('signature = "python3.13_3.13.5.orig.tar.xz.asc"', 'signature = "x.asc"',
             "no signature artifact"),
        ],
    )  # fmt: skip
    def test_schema_violations(self, old, new, words):
        text = dumps(make_lock())
        assert old in text
        error = load_error(text.replace(old, new, 1))
        assert error.reason == "lock-invalid"
        assert words in str(error)

    def test_duplicate_artifact(self):
        text = dumps(make_lock())
        start = text.index('[[artifact]]\nkind = "wheel"\nname = "uvicorn"')
        end = text.index("\n[[artifact]]", start)
        error = load_error(text + "\n" + text[start:end] + "\n")
        assert "listed twice" in error.message

    def test_every_problem_is_reported(self):
        text = dumps(make_lock()).replace("size = 59575", "size = -1")
        text = text.replace(f'sha256 = "{"1" * 64}"', 'sha256 = "nope"')
        error = load_error(text)
        assert len(error.problems) == 2
        assert error.problems[0].startswith("image.lock:")

    def test_dumps_refuses_what_loads_would_refuse(self):
        arts = artifacts()
        arts[0] = dataclasses.replace(arts[0], sha256="ABC")
        with pytest.raises(LockError, match="sha256 'ABC'"):
            dumps(make_lock(arts=arts))


class TestCheck:
    def test_current_lock_has_no_reasons(self):
        assert check(make_lock(), config()) == []

    def test_renaming_the_image_keeps_the_lock_current(self):
        lock = make_lock()
        renamed = config(
            CONFIG.replace("name: python-fastapi", "name: acme/api")
            .replace("cmd: [uvicorn, app:app]", "cmd: [python, -m, app]")
            .replace("MODE: prod", "MODE: dev")
        )
        assert config_fingerprint(renamed) == lock.config_digest
        assert check(lock, renamed) == []

    def test_order_of_packages_and_base_does_not_matter(self):
        moved = CONFIG.replace(
            "  fastapi: 0.104.1\n  uvicorn[standard]: 0.24.0\n",
            "  uvicorn[standard]: 0.24.0\n  fastapi: 0.104.1\n",
        ).replace("[ca-certificates, tzdata]", "[tzdata, ca-certificates]")
        assert check(make_lock(), config(moved)) == []

    @pytest.mark.parametrize(
        ("old", "new", "reason"),
        [
            ("python_version: 3.13.5", "python_version: 3.13.6",
             "python_version changed: 3.13.5 in the lock, 3.13.6 in the config"),
            ("  fastapi: 0.104.1\n", "  fastapi: 0.104.1\n  httpx: 0.27.0\n",
             "package 'httpx' 0.27.0 was added to the config"),
            ("  fastapi: 0.104.1\n", "",
             "package 'fastapi' was removed from the config"),
            ("fastapi: 0.104.1", "fastapi: 0.110.0",
             "package 'fastapi' changed: 0.104.1 in the lock, 0.110.0 in the config"),
            ("uvicorn[standard]", "uvicorn",
             "extras of 'uvicorn' changed: [standard] in the lock, [] in the config"),
            ("base: [ca-certificates, tzdata]", "base: [ca-certificates, tzdata, netbase]",
             "base package 'netbase' was added to the config"),
            ("base: [ca-certificates, tzdata]", "base: [ca-certificates]",
             "base package 'tzdata' was removed from the config"),
        ],
    )  # fmt: skip
    def test_each_change_has_its_reason(self, old, new, reason):
        assert check(make_lock(), config(CONFIG.replace(old, new))) == [reason]

    def test_platforms_and_build_type(self):
        changed = dataclasses.replace(config(), platforms=("linux/arm64",), build_type="dev")
        reasons = check(make_lock(), changed)
        assert reasons == [
            "platforms changed: linux/amd64 in the lock, linux/arm64 in the config",
            "build_type changed: hermetic in the lock, dev in the config",
        ]

    def test_a_lock_whose_digest_differs_is_stale(self):
        lock = dataclasses.replace(make_lock(), config_digest="sha256:" + "0" * 64)
        reasons = check(lock, config())
        assert len(reasons) == 1 and "config digest differs" in reasons[0]

    def test_check_survives_the_text(self):
        lock = loads(dumps(make_lock()), "image.lock")
        assert check(lock, config()) == []
        assert check(lock, config(CONFIG.replace("0.24.0", "0.24.1")))
