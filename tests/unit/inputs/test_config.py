"""The image config: the brief's form, and every error located at file:line:column."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from seal.daemon.inputs.config import (
    ConfigError,
    ImageConfig,
    PackagePin,
    parse_config,
    resolve_app_paths,
)

EXAMPLE = Path(__file__).parents[3] / "examples" / "python-fastapi.yaml"
BRIEF = """\
name: python-fastapi
python_version: 3.12.1
packages:
  fastapi: 0.104.1
  uvicorn: 0.24.0
build_type: hermetic
"""


def parse(text: str) -> ImageConfig:
    return parse_config(textwrap.dedent(text), "image.yaml")


def error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return info.value


def brief_with(extra: str) -> str:
    return BRIEF + textwrap.dedent(extra)


class TestValid:
    def test_the_brief_parses_as_written(self):
        cfg = parse(BRIEF)
        assert cfg.name == "python-fastapi"
        assert cfg.python_version == "3.12.1"
        assert cfg.packages == (PackagePin("fastapi", "0.104.1"), PackagePin("uvicorn", "0.24.0"))
        assert cfg.build_type == "hermetic"
        assert cfg.platforms == ("linux/amd64",)
        assert cfg.entrypoint is cfg.cmd is cfg.source_date_epoch is None

    def test_the_example_file_parses(self):
        cfg = parse_config(EXAMPLE.read_text(), str(EXAMPLE))
        assert cfg.python_version == "3.13.5"
        assert [p.name for p in cfg.packages] == ["fastapi", "uvicorn"]

    def test_every_optional_key(self):
        cfg = parse(
            brief_with("""\
            platforms: [linux/amd64]
            entrypoint: ["/usr/bin/python3", "-m", "uvicorn"]
            cmd: main:app --host 0.0.0.0
            env: {PORT: "8000", APP_MODE: prod}
            app: [./src/, main.py, .]
            tests: ["python3 -c 'import fastapi'"]
            base: [ca-certificates, libstdc++6]
            source_date_epoch: 1700000000
            """)
        )
        assert cfg.entrypoint == ("/usr/bin/python3", "-m", "uvicorn")
        assert cfg.cmd == ("main:app", "--host", "0.0.0.0")
        assert cfg.env == (("PORT", "8000"), ("APP_MODE", "prod"))
        assert cfg.app == ("src", "main.py", ".")
        assert cfg.tests == ("python3 -c 'import fastapi'",)
        assert cfg.base == ("ca-certificates", "libstdc++6")
        assert cfg.source_date_epoch == 1700000000

    def test_names_are_normalized_and_extras_kept(self):
        cfg = parse(
            """\
            name: app
            python_version: 3.12.1
            packages:
              Typing_Extensions: 4.8.0
              uvicorn[Standard, socks]: 0.24.0
            build_type: hermetic
            """
        )
        assert cfg.packages[0] == PackagePin("typing-extensions", "4.8.0")
        assert cfg.packages[0].spelling == "Typing_Extensions"
        assert cfg.packages[1].extras == ("socks", "standard")

    def test_a_number_version_keeps_its_text(self):
        # numpy: 2.10 is the float 2.1 to YAML; the text the user wrote is exact
        cfg = parse(brief_with("").replace("uvicorn: 0.24.0", "numpy: 2.10\n  six: 1"))
        assert [(p.name, p.version) for p in cfg.packages][1:] == [("numpy", "2.10"), ("six", "1")]

    def test_marks_locate_values_for_later_errors(self):
        cfg = parse(BRIEF)
        err = cfg.error_at("packages.uvicorn", "uvicorn 0.24.0 is not on the index")
        assert str(err) == "image.yaml:5:3: uvicorn 0.24.0 is not on the index"
        assert err.reason == "config-invalid"


class TestErrors:
    @pytest.mark.parametrize(
        "text, where, kind",
        [
            (brief_with("buildtype: x\n"), "7:1", "unknown-key"),
            (brief_with("name: again\n"), "7:1", "duplicate-key"),
            (BRIEF.replace("3.12.1", "'3.12'"), "2:17", "python-version"),
            (BRIEF.replace("3.12.1", "3.12.1rc1"), "2:17", "python-version"),
            (BRIEF.replace("hermetic", "docker"), "6:13", "build-type"),
            (BRIEF.replace("0.104.1", "0.104.1.dev0+local"), "4:12", "invalid-version"),
            (BRIEF.replace("0.104.1", "one.two"), "4:12", "invalid-version"),
            (BRIEF.replace("fastapi:", "fast api:"), "4:3", "invalid-name"),
            (BRIEF.replace("fastapi:", "-fastapi:"), "4:3", "invalid-name"),
            (BRIEF.replace("fastapi:", "uvicorn[st andard]:"), "4:3", "invalid-name"),
            (BRIEF.replace("python-fastapi", "Python FastAPI"), "1:7", "invalid-name"),
            (BRIEF.replace("python-fastapi", "[a, b]"), "1:7", "type"),
            (brief_with("env: {PORT: 8000}\n"), "7:13", "type"),
            (brief_with("env: {1X: a}\n"), "7:7", "invalid-name"),
            (brief_with("env: [A=b]\n"), "7:6", "type"),
            (brief_with("base: [Libc6]\n"), "7:8", "invalid-name"),
            (brief_with("base: [libc6=2.36]\n"), "7:8", "invalid-name"),
            (brief_with("tests: python -m pytest\n"), "7:8", "type"),
            (brief_with("cmd: 'python \"-c'\n"), "7:6", "type"),
            (brief_with("entrypoint: []\n"), "7:13", "type"),
            (brief_with("source_date_epoch: -1\n"), "7:20", "invalid-epoch"),
            (brief_with("source_date_epoch: '1700000000'\n"), "7:20", "type"),
            (brief_with("source_date_epoch: true\n"), "7:20", "type"),
            (brief_with("<<: {a: 1}\n"), "7:1", "type"),
            (brief_with("1: x\n"), "7:1", "type"),
            ("- a list\n", "1:1", "type"),
        ],
        ids=lambda v: "cfg" if "\n" in v else v,
    )
    def test_each_kind_is_located(self, text, where, kind):
        err = error(text)
        assert (f"{err.line}:{err.column}", err.kind) == (where, kind), str(err)
        assert str(err).startswith(f"image.yaml:{where}: ")
        assert err.reason == "config-invalid"
        assert "\n" not in str(err)

    def test_unknown_key_suggests_the_closest(self):
        err = error(brief_with("entry_point: app\n"))
        assert str(err) == "image.yaml:7:1: unknown key 'entry_point'"
        assert err.hint == "did you mean 'entrypoint'?"

    @pytest.mark.parametrize(
        "version, where",
        [
            ('">=0.104"', "4:12"),
            ("'~=0.104.0'", "4:12"),
            ("'*'", "4:12"),
            ("0.104.*", "4:12"),
            ("'==0.104.1'", "4:12"),
            ("'>0.1,<1'", "4:12"),
            ("latest", "4:12"),
            ("''", "4:12"),
            ("", "4:11"),  # nothing after the colon: YAML's null, located where the value goes
            ("[0.104.1]", "4:12"),
            ("\n    - 0.104.1", "5:5"),
        ],
    )
    def test_unpinned_versions_name_the_policy(self, version, where):
        err = error(BRIEF.replace(" 0.104.1", f" {version}" if version else ""))
        assert (f"{err.line}:{err.column}", err.kind) == (where, "unpinned-version"), str(err)
        assert "no unpinned versions" in err.message
        assert err.hint == "pin one exact version: fastapi: X.Y.Z"

    @pytest.mark.parametrize("version", ["3.10", "3.12", "3"])
    def test_python_version_as_a_yaml_number_is_rejected(self, version):
        err = error(BRIEF.replace("3.12.1", version))
        assert (err.line, err.column, err.kind) == (2, 17, "python-version")
        if version == "3.10":
            assert "read by YAML as the number 3.1" in err.message
            assert "3.10.1" in err.hint and '"' in err.hint  # quote it, or write the patch level

    def test_a_quoted_python_version_needs_its_patch_level(self):
        err = error(BRIEF.replace("3.12.1", '"3.10"'))
        assert "X.Y.Z" in err.message and "'3.10'" in err.message

    def test_duplicate_keys_are_caught_at_any_depth(self):
        err = error(BRIEF.replace("  uvicorn: 0.24.0", "  uvicorn: 0.24.0\n  uvicorn: 0.25.0"))
        assert (err.line, err.column, err.kind) == (6, 3, "duplicate-key")
        assert "first at line 5" in err.message

    @pytest.mark.parametrize("spelling", ["FastAPI", "fast_api", "Fast.API", "fast--api"])
    def test_names_equal_after_pep_503_normalization_are_duplicates(self, spelling):
        text = BRIEF.replace("fastapi:", "fast-api:").replace("  uvicorn:", f"  {spelling}:")
        if spelling == "FastAPI":
            text = BRIEF.replace("  uvicorn:", "  FastAPI:")
        err = error(text)
        assert (err.line, err.column, err.kind) == (5, 3, "duplicate-key")
        assert "PEP 503" in err.message

    def test_a_missing_key_points_at_the_document_start(self):
        err = error("# an image\n\nname: x\npython_version: 3.12.1\npackages: {}\n")
        assert (err.line, err.column, err.kind) == (3, 1, "missing-key")
        assert "'build_type'" in err.message

    def test_an_empty_file(self):
        err = error("# nothing\n")
        assert (err.line, err.column, err.kind) == (1, 1, "missing-key")

    def test_yaml_syntax_errors_are_one_located_line(self):
        err = error("name: x\npackages: {fastapi: 1\n")
        assert err.kind == "yaml-syntax"
        assert str(err).startswith("image.yaml:3:1: YAML syntax error: ")
        assert "\n" not in str(err)

    @pytest.mark.parametrize(
        "text, where", [("name: x\nb: a\x00b\n", (2, 5)), (b"name: x\nb: \xff\n", (2, 4))]
    )
    def test_unreadable_characters_are_located(self, text, where):
        with pytest.raises(ConfigError) as info:
            parse_config(text, "image.yaml")
        assert (info.value.line, info.value.column, info.value.kind) == (*where, "yaml-syntax")
        assert "\n" not in str(info.value)

    def test_a_tab_indent_is_a_syntax_error(self):
        err = error("packages:\n\tfastapi: 1.0\n")
        assert (err.line, err.column, err.kind) == (2, 1, "yaml-syntax")

    def test_two_documents_are_rejected(self):
        err = error(BRIEF + "---\nname: x\n")
        assert (err.line, err.kind) == (7, "yaml-syntax")

    def test_every_problem_is_collected_in_file_order(self):
        err = error(
            """\
            name: x
            python_version: 3.10
            packages:
              fastapi: ">=1"
              FastAPI: 1.0
            build_typ: hermetic
            """
        )
        got = [(p.line, p.column, p.kind) for p in err.problems]
        assert got == [
            (1, 1, "missing-key"),
            (2, 17, "python-version"),
            (4, 12, "unpinned-version"),
            (5, 3, "duplicate-key"),
            (6, 1, "unknown-key"),
        ]
        assert err is err.problems[0]
        assert len(err.render().splitlines()) == 10  # each problem with its hint


class TestPlatforms:
    def test_amd64_is_accepted(self):
        assert parse(brief_with("platforms: [linux/amd64]\n")).platforms == ("linux/amd64",)

    def test_arm64_is_not_supported_yet(self):
        err = error(brief_with("platforms: [linux/amd64, linux/arm64]\n"))
        assert (err.line, err.column, err.kind) == (7, 26, "platform-unsupported")
        assert "not supported yet" in err.message

    @pytest.mark.parametrize(
        "value, kind",
        [
            ("[windows]", "invalid-platform"),
            ("linux/amd64", "type"),
            ("[]", "type"),
            ("[linux/amd64, linux/amd64]", "duplicate-entry"),
        ],
    )
    def test_bad_platform_lists(self, value, kind):
        assert error(brief_with(f"platforms: {value}\n")).kind == kind


class TestAppPaths:
    @pytest.mark.parametrize(
        "path, column",
        [
            ("/etc/passwd", 7),
            ("../secret", 7),
            ("src/../../secret", 7),
            ("'..'", 7),
            ("'C:\\\\x'", 7),
            ("'src\\\\..\\\\..'", 7),
            ("''", 7),
        ],
    )
    def test_paths_must_stay_inside_the_config_directory(self, path, column):
        err = error(brief_with(f"app: [{path}]\n"))
        assert (err.line, err.column, err.kind) == (7, column, "app-path-escapes"), str(err)

    def test_inner_dotdot_that_stays_inside_is_normalized(self):
        assert parse(brief_with("app: [src/../main.py]\n")).app == ("main.py",)

    def test_a_path_listed_twice_after_normalization(self):
        err = error(brief_with("app:\n  - src\n  - ./src/\n"))
        assert (err.line, err.column, err.kind) == (9, 5, "duplicate-entry")

    def test_on_disk_a_symlink_out_is_caught(self, tmp_path: Path):
        (tmp_path / "src").mkdir()
        (tmp_path / "src" / "main.py").write_text("")
        os.symlink("/etc", tmp_path / "etc")
        cfg = parse(brief_with("app: [src, etc, missing]\n"))
        with pytest.raises(ConfigError) as info:
            resolve_app_paths(cfg, tmp_path)
        assert (info.value.line, info.value.column) == (7, 12)
        assert info.value.kind == "app-path-escapes"
        cfg = parse(brief_with("app: [src, missing]\n"))
        with pytest.raises(ConfigError) as info:
            resolve_app_paths(cfg, tmp_path)
        assert (info.value.column, info.value.kind) == (12, "app-path-missing")
        assert resolve_app_paths(parse(brief_with("app: [src]\n")), tmp_path) == (
            (tmp_path / "src").resolve(),
        )
