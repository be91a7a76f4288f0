"""The wheel: LICENSE, the generated modules and the .proto files all ship in it.

The protos are installed as ``actorgrpc/protos/actorgrpc/v1/*.proto`` (the
``actorgrpc.protos`` mapping in pyproject.toml), so that a client in another
language can be generated from an installed actorgrpc with
``protoc -I <site-packages>/actorgrpc/protos``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROTOS = sorted((ROOT / "protos" / "actorgrpc" / "v1").glob("*.proto"))
GENERATED = sorted(p for p in (ROOT / "generated" / "actorgrpc" / "v1").iterdir() if p.is_file())

# Not part of a build's input; copying them would be slow or leak state into it.
_NOT_COPIED = shutil.ignore_patterns(
    ".git",
    ".venv",
    "build",
    "dist",
    "node_modules",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[zipfile.ZipFile]:
    """The wheel built from a copy of the tree.

    A copy, so that setuptools' build/ and *.egg-info stay out of the checkout
    and no stale build/lib from an earlier build can end up in the wheel. No
    build isolation and no index: the test venv's setuptools (the dev extra
    pins the build requirement) builds it offline, in a few seconds.
    """
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=_NOT_COPIED)
    dist = tmp / "dist"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        str(src),
        "--no-deps",
        "--no-build-isolation",
        "--check-build-dependencies",
        "--no-index",
        "--quiet",
        "--wheel-dir",
        str(dist),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=100)
    assert out.returncode == 0, out.stdout + out.stderr
    (built,) = dist.glob("actorgrpc-*.whl")
    with zipfile.ZipFile(built) as zf:
        yield zf


def test_there_is_something_to_ship():
    assert {p.name for p in PROTOS} >= {"value.proto", "mailbox.proto", "supervisor.proto"}
    assert any(p.name.endswith("_pb2_grpc.py") for p in GENERATED)


def test_the_wheel_carries_the_license(wheel):
    licenses = [n for n in wheel.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
    assert len(licenses) == 1, wheel.namelist()
    assert wheel.read(licenses[0]) == (ROOT / "LICENSE").read_bytes()
    (metadata,) = (n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
    headers = wheel.read(metadata).decode().split("\n\n", 1)[0].splitlines()
    assert "License-Expression: BSD-3-Clause" in headers
    assert "License-File: LICENSE" in headers


def test_the_wheel_carries_every_proto_under_actorgrpc_protos(wheel):
    names = set(wheel.namelist())
    for proto in PROTOS:
        name = f"actorgrpc/protos/actorgrpc/v1/{proto.name}"
        assert name in names, f"{name} is not in the wheel"
        assert wheel.read(name) == proto.read_bytes(), name
    shipped = {n for n in names if n.endswith(".proto")}
    assert shipped == {f"actorgrpc/protos/actorgrpc/v1/{p.name}" for p in PROTOS}


def test_the_wheel_carries_the_generated_modules_as_actorgrpc_v1(wheel):
    names = set(wheel.namelist())
    for module in GENERATED:
        name = f"actorgrpc/v1/{module.name}"
        assert name in names, f"{name} is not in the wheel"
        assert wheel.read(name) == module.read_bytes(), name


def test_protoc_generates_a_client_from_the_shipped_protos(wheel, tmp_path):
    """What a user of another language does: ``protoc -I .../actorgrpc/protos``."""
    wheel.extractall(tmp_path / "site")
    include = tmp_path / "site" / "actorgrpc" / "protos"
    out = tmp_path / "out"
    out.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "-I",
        str(include),
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--descriptor_set_out={out / 'all.pb'}",
        *(f"actorgrpc/v1/{p.name}" for p in PROTOS),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (out / "actorgrpc" / "v1" / "mailbox_pb2_grpc.py").is_file()
    assert (out / "actorgrpc" / "v1" / "supervisor_pb2_grpc.py").is_file()
