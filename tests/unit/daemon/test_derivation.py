"""Derivations: canonical form, digests, validation errors, graph order and cycles."""

from __future__ import annotations

import json

import pytest

from seal.daemon.build import builtins
from seal.daemon.build.derivation import (
    EPOCH_FLOOR,
    DrvInput,
    ObjectInput,
    parse,
    resolve_documents,
    topological,
)
from seal.daemon.errors import InvalidDerivation
from seal.store.digest import Digest

ROOT = "sha256:" + "ab" * 32
SRC = "sha256:" + "cd" * 32


def sandboxed(**over) -> dict:
    doc = {
        "name": "hello",
        "builder": {"sandbox": {"args": ["/bin/sh", "-c", "echo hi > $out/x"]}, "root": "root"},
        "inputs": {"root": {"object": ROOT}, "src": {"object": SRC}},
    }
    doc.update(over)
    return doc


def test_defaults_are_filled_so_two_spellings_share_one_digest():
    short = parse(json.dumps(sandboxed()))
    full = sandboxed(outputs=["out"], system="x86_64-linux", source_date_epoch=EPOCH_FLOOR)
    full["builder"]["sandbox"]["env"] = {}
    assert parse(json.dumps(full, indent=4)).digest == short.digest
    assert short.outputs == ("out",)
    assert short.digest == Digest.of_bytes(short.canonical)


def test_canonical_json_is_rfc8785_sorted_and_compact():
    drv = parse(json.dumps(sandboxed()))
    text = drv.canonical.decode()
    assert text.startswith('{"builder":{"root":"root","sandbox":{"args":')
    assert " " not in text.replace("echo hi > $out/x", "")
    assert parse(drv.canonical).digest == drv.digest  # canonical form parses to itself


@pytest.mark.parametrize(
    "change",
    [
        lambda d: d["builder"]["sandbox"]["args"].append("x"),
        lambda d: d["inputs"]["src"].update(object="sha256:" + "ce" * 32),
        lambda d: d.update(name="hello2"),
        lambda d: d.update(source_date_epoch=EPOCH_FLOOR + 1),
        lambda d: d["builder"]["sandbox"].update(env={"A": "1"}),
    ],
)
def test_any_change_to_the_recipe_changes_the_digest(change):
    doc = sandboxed()
    before = parse(json.dumps(doc)).digest
    change(doc)
    assert parse(json.dumps(doc)).digest != before


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (sandboxed(colour="red"), "derivation: unknown field 'colour'"),
        ({"builder": {"builtin": "x", "version": 1}}, "missing field 'name'"),
        (sandboxed(outputs=[]), "at least one output"),
        (sandboxed(outputs=["Out"]), "'Out' is not an output name"),
        (sandboxed(outputs=["out", "out"]), "named twice"),
        (sandboxed(source_date_epoch=0), "before 1980-01-01"),
        (sandboxed(source_date_epoch="1"), "source_date_epoch: expected an integer"),
        (sandboxed(system="aarch64-linux"), "not supported"),
        (sandboxed(name="a/b"), "is not a name"),
        (sandboxed(inputs={"root": {"object": "sha256:12"}}), "inputs.root.object: 'sha256:12'"),
        (sandboxed(inputs={"root": {"objekt": ROOT}}), 'an input is {"object"'),
        (sandboxed(inputs={"src": {"object": SRC}}), "the root 'root' is not one of the inputs"),
        (sandboxed(fixed={"sha256": "00" * 32}), "only builtins fetch"),
    ],
)
def test_validation_errors_name_the_field(doc, message):
    with pytest.raises(InvalidDerivation) as err:
        parse(json.dumps(doc))
    assert message in err.value.message


def test_reserved_environment_and_relative_program_are_refused():
    doc = sandboxed()
    doc["builder"]["sandbox"]["env"] = {"HOME": "/root"}
    with pytest.raises(InvalidDerivation, match="HOME is set by the sandbox"):
        parse(json.dumps(doc))
    doc = sandboxed()
    doc["builder"]["sandbox"]["args"] = ["sh", "-c", "true"]
    with pytest.raises(InvalidDerivation, match="absolute path"):
        parse(json.dumps(doc))


def test_bad_json_duplicate_keys_and_nan_are_refused():
    with pytest.raises(InvalidDerivation, match="not JSON: .* line 1"):
        parse(b'{"name": ')
    with pytest.raises(InvalidDerivation, match="'name' appears twice"):
        parse(b'{"name": "a", "name": "b"}')
    with pytest.raises(InvalidDerivation, match="NaN is not allowed"):
        parse(b'{"name": NaN}')


def test_builtins_are_checked_by_name_version_and_params():
    def fetch(**over):
        doc = {
            "name": "src",
            "builder": {
                "builtin": "fetch-url",
                "version": 1,
                "params": {"url": "https://example.org/a"},
            },
            "fixed": {"sha256": "00" * 32},
        }
        doc.update(over)
        return parse(json.dumps(doc))

    builtins.validate(fetch())
    with pytest.raises(InvalidDerivation, match="unknown builtin 'fetch-url' version 9"):
        builtins.validate(fetch(builder={"builtin": "fetch-url", "version": 9}))
    unpinned = {
        "name": "src",
        "builder": {"builtin": "fetch-url", "version": 1, "params": {"url": "https://x"}},
    }
    with pytest.raises(InvalidDerivation, match="needs a declared hash"):
        builtins.validate(parse(json.dumps(unpinned)))
    bad = {"builtin": "fetch-url", "version": 1, "params": {"url": "file:///etc/passwd"}}
    with pytest.raises(InvalidDerivation, match="not an http"):
        builtins.validate(fetch(builder=bad))


@pytest.mark.parametrize(
    "params",
    [
        {"urls": [], "size": 1},
        {"urls": ["https://a/x"]},
        {"urls": ["https://a/x"], "size": -1},
        {"urls": ["https://a/x"], "size": True},
        {"urls": ["https://a/x", "ftp://b/x"], "size": 1},
        {"urls": "https://a/x", "size": 1},
        {"urls": ["https://a/x"], "size": 1, "extra": 1},
    ],
)
def test_fetch_url_v2_params_are_checked(params):
    doc = {
        "name": "w",
        "builder": {"builtin": "fetch-url", "version": 2, "params": params},
        "fixed": {"sha256": "00" * 32},
    }
    with pytest.raises(InvalidDerivation):
        builtins.validate(parse(json.dumps(doc)))
    doc["builder"]["params"] = {"urls": ["https://a/x", "http://mirror/x"], "size": 0}
    builtins.validate(parse(json.dumps(doc)))


def _doc(name: str, *deps: str) -> bytes:
    inputs = {f"d{i}": {"drv": dep} for i, dep in enumerate(deps)}
    return json.dumps(
        {"name": name, "builder": {"builtin": "fetch-url", "version": 1}, "inputs": inputs}
    ).encode()


def test_documents_naming_each_other_resolve_deps_first():
    docs = {"app": _doc("app", "lib", "tool"), "lib": _doc("lib", "tool"), "tool": _doc("tool")}
    order = resolve_documents(docs, "app")
    assert [d.name for d in order] == ["tool", "lib", "app"]
    app = order[-1]
    assert app.inputs["d0"] == DrvInput(order[1].digest, "out")


def test_a_cycle_of_documents_is_named():
    docs = {"a": _doc("a", "b"), "b": _doc("b", "c"), "c": _doc("c", "a")}
    with pytest.raises(InvalidDerivation, match="cycle: a -> b -> c -> a"):
        resolve_documents(docs, "a")


def test_a_reference_to_nothing_is_refused():
    with pytest.raises(InvalidDerivation, match="'ghost' is neither a digest nor a derivation"):
        resolve_documents({"a": _doc("a", "ghost")}, "a")


def test_topological_order_visits_each_derivation_once_after_its_inputs():
    docs = {
        "top": _doc("top", "left", "right"),
        "left": _doc("left", "base"),
        "right": _doc("right", "base"),
        "base": _doc("base"),
    }
    by_digest = {d.digest: d for d in resolve_documents(docs, "top")}
    top = next(d for d in by_digest.values() if d.name == "top")
    order = topological(top.digest, by_digest.__getitem__)
    names = [d.name for _, d in order]
    assert names[0] == "base" and names[-1] == "top" and sorted(names) == sorted(docs)
    assert isinstance(parse(json.dumps(sandboxed())).inputs["src"], ObjectInput)
