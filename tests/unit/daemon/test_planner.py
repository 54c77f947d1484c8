"""seal.daemon.build.planner: config + lock -> derivation documents."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from seal.daemon.build import builtins, planner
from seal.daemon.build.derivation import BuiltinBuilder, SandboxBuilder, resolve_documents
from seal.daemon.inputs.config import parse_config
from seal.daemon.inputs.lockfile import Artifact, DebianSource, Lock, Sources
from seal.store.digest import Digest

CONFIG = """\
name: demo
python_version: 3.13.5
packages:
  alpha: 1.0
build_type: hermetic
cmd: ["-m", "alpha"]
env:
  GREETING: hello
"""
RELEASE = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def art(kind: str, name: str, filename: str, role: str, ch: str) -> Artifact:
    return Artifact(kind, name, "1.0", filename, (f"https://example.org/{filename}",),
                    ch * 64, 10, role)  # fmt: skip


def debian(date: datetime = RELEASE) -> DebianSource:
    return DebianSource(
        mirror="https://deb.debian.org/debian", suite="bookworm", codename="bookworm",
        architecture="amd64", components=("main",), date=date,
        inrelease_url="https://deb.debian.org/debian/dists/bookworm/InRelease",
        inrelease_sha256="a" * 64, inrelease_size=1, signers=("F" * 40,),
    )  # fmt: skip


def make_lock(**changes) -> Lock:
    artifacts = [
        art("deb", "gcc", "gcc_1.0_amd64.deb", "toolchain", "1"),
        art("deb", "dpkg", "debianutils_5.7-0.5~deb12u1_amd64.deb", "toolchain", "2"),
        art("deb", "libc6", "libc6_1.0_amd64.deb", "runtime", "3"),
        art("cpython-source", "cpython", "python3.13_3.13.5.orig.tar.xz", "cpython", "4"),
        art("wheel", "alpha", "alpha-1.0-py3-none-any.whl", "python", "5"),
    ]
    fields = dict(
        config_name="demo", config_digest="sha256:" + "0" * 64, python_version="3.13.5",
        target={"platform": "linux/amd64"}, sources=Sources(debian=(debian(),)),
        artifacts=tuple(artifacts), generator="seal 0.1.0",
    )  # fmt: skip
    fields.update(changes)
    return Lock(**fields)


@pytest.fixture
def config():
    return parse_config(CONFIG, "demo.yaml")


def drvs(plan):
    return {d.name: d for d in resolve_documents(plan.documents, plan.target)}


def test_the_plan_is_a_pure_function_of_config_and_lock(config):
    a, b = planner.plan(config, make_lock()), planner.plan(config, make_lock())
    assert a.documents == b.documents
    assert drvs(a)["image"].digest == drvs(b)["image"].digest


def test_every_step_is_a_sandbox_or_a_known_builtin_and_none_fetches(config):
    for drv in drvs(planner.plan(config, make_lock())).values():
        builtins.validate(drv, drv.name)  # known builtin, valid params
        assert drv.fixed_sha256 is None  # no step but a fetch may reach the network
        assert isinstance(drv.builder, SandboxBuilder | BuiltinBuilder)
        if isinstance(drv.builder, BuiltinBuilder):
            assert drv.builder.builtin in {"deb-root", "install-wheels", "oci-image"}


def test_cpython_is_built_with_the_hardening_flags(config):
    cpython = drvs(planner.plan(config, make_lock()))["cpython-3.13.5"]
    script = cpython.builder.args[-1]
    assert 'CFLAGS="-O2 -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE"' in script
    assert 'LDFLAGS="-Wl,-z,relro -Wl,-z,now"' in script
    assert "-pie" not in script.replace("-fPIE", "")
    assert "--prefix=/usr/local" in script and 'make -j"$SEAL_BUILD_CORES"' in script
    assert cpython.inputs["src"].digest == Digest.from_hex("4" * 64)


def test_the_epoch_comes_from_the_lock_never_the_clock(config):
    epoch = int(RELEASE.timestamp())
    plan = planner.plan(config, make_lock())
    assert plan.source_date_epoch == epoch
    assert {d.source_date_epoch for d in drvs(plan).values()} == {epoch}
    later = planner.plan(
        config, make_lock(sources=Sources(debian=(debian(datetime(2026, 1, 1, tzinfo=UTC)),)))
    )
    assert later.source_date_epoch > epoch
    pinned = parse_config(CONFIG + "source_date_epoch: 400000000\n", "demo.yaml")
    assert planner.plan(pinned, make_lock()).source_date_epoch == 400000000


def test_the_image_config_runs_as_nonroot_with_the_config_env(config):
    image = drvs(planner.plan(config, make_lock()))["image"]
    params = image.builder.params
    assert params["config"]["user"] == "65532:65532"
    assert params["config"]["entrypoint"] == [] and params["config"]["cmd"] == ["-m", "alpha"]
    assert "GREETING=hello" in params["config"]["env"]
    assert params["layers"] == ["runtime", "python", "site-packages"]


def test_app_files_become_a_fourth_layer(config):
    app = Digest.from_hex("6" * 64)
    image = drvs(planner.plan(config, make_lock(), app=app))["image"]
    assert image.builder.params["layers"][-1] == "app"
    assert image.inputs["app"].digest == app
    assert image.builder.params["config"]["workdir"] == "/app"


def test_debian_versions_with_a_tilde_are_valid_input_names(config):
    toolchain = drvs(planner.plan(config, make_lock()))["toolchain"]
    assert "debianutils_5.7-0.5~deb12u1_amd64.deb" in toolchain.inputs


def test_a_lock_without_a_cpython_source_is_refused(config):
    lock = make_lock()
    lock = make_lock(artifacts=tuple(a for a in lock.artifacts if a.kind != "cpython-source"))
    with pytest.raises(planner.PlanError, match="CPython sources"):
        planner.plan(config, lock)


def test_documents_are_json(config):
    for text in planner.plan(config, make_lock()).documents.values():
        assert json.loads(text)["source_date_epoch"] >= 315532800


def test_bytecode_is_compiled_with_a_fixed_hash_seed(config):
    """Set constants are marshalled in hash order: a random seed gives other .pyc bytes."""
    steps = drvs(planner.plan(config, make_lock()))
    assert "PYTHONHASHSEED=0 " in steps["cpython-3.13.5"].builder.args[-1]
    assert steps["site-packages"].builder.env["PYTHONHASHSEED"] == "0"


def test_config_tests_run_in_the_assembled_image_before_it_is_made(config):
    tested = parse_config(CONFIG + 'tests:\n  - python3 -c "import alpha"\n', "demo.yaml")
    steps = drvs(planner.plan(tested, make_lock()))
    assert steps["rootfs"].builder.builtin == "merge-trees"
    assert steps["rootfs"].builder.params["layers"] == ["runtime", "python", "site-packages"]
    run = steps["image-tests"]
    assert run.builder.root == "rootfs" and run.builder.args[-1] == 'python3 -c "import alpha"'
    assert "tests" in steps["image"].inputs  # the image waits for them
    assert "image-tests" not in drvs(planner.plan(config, make_lock()))


def test_the_compile_steps_let_the_environment_apply(config):
    """-E or -I would make Python ignore PYTHONHASHSEED (and so give other .pyc bytes)."""
    steps = drvs(planner.plan(config, make_lock()))
    script = steps["cpython-3.13.5"].builder.args[-1]
    compile_line = next(line for line in script.splitlines() if "-m compileall" in line)
    assert " -E " not in compile_line and " -I " not in compile_line and " -f " in compile_line
    assert "-E" not in steps["site-packages"].builder.args
    assert "-I" not in steps["site-packages"].builder.args
