"""The wire contract: generated/ matches protos/ (`make protos`) and imports as actorgrpc.v1."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from actorgrpc.v1 import mailbox_pb2, supervisor_pb2, value_pb2

from actorgrpc.core import errors

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
GENERATED = ROOT / "generated" / "actorgrpc" / "v1"
PROTO_FILES = sorted((PROTOS / "actorgrpc" / "v1").glob("*.proto"))


def test_there_are_protos():
    assert {p.name for p in PROTO_FILES} >= {"value.proto", "mailbox.proto", "supervisor.proto"}


def test_generated_code_matches_the_protos(tmp_path):
    """`make protos` drift: regenerate into a temp dir and compare byte for byte."""
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        "-I",
        "protos",
        f"--python_out={tmp_path}",
        f"--pyi_out={tmp_path}",
        f"--grpc_python_out={tmp_path}",
        *(str(p.relative_to(ROOT)) for p in PROTO_FILES),
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    fresh_dir = tmp_path / "actorgrpc" / "v1"
    fresh = {p.name: p.read_bytes() for p in fresh_dir.iterdir() if p.is_file()}
    committed = {
        p.name: p.read_bytes()
        for p in GENERATED.iterdir()
        if p.is_file() and p.name != "__init__.py"
    }
    assert fresh, "protoc wrote nothing"
    assert sorted(committed) == sorted(fresh), "generated/ has missing or extra files"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"generated/ is stale, run `make protos`: {stale}"
    assert (GENERATED / "__init__.py").exists()


def test_generated_package_imports_as_actorgrpc_v1_without_path_tricks(tmp_path):
    # Isolated mode (-I): no PYTHONPATH, no cwd on sys.path; run from elsewhere.
    code = (
        "import sys, actorgrpc.v1.mailbox_pb2 as m, actorgrpc.v1.supervisor_pb2_grpc as s;"
        "import actorgrpc.v1.value_pb2 as v;"
        "print(m.__file__); print(v.__file__);"
        "print(any('generated' in p for p in sys.path))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    mailbox_file, value_file, generated_on_path = out.stdout.split()
    assert Path(mailbox_file).resolve() == (GENERATED / "mailbox_pb2.py").resolve()
    assert Path(value_file).resolve() == (GENERATED / "value_pb2.py").resolve()
    assert generated_on_path == "False"


def test_generated_files_are_marked_do_not_edit():
    for path in GENERATED.glob("*_pb2*.py"):
        assert "DO NOT EDIT" in path.read_text()[:500], path.name


@pytest.mark.parametrize("path", PROTO_FILES, ids=lambda p: p.name)
def test_proto_package_matches_its_directory(path):
    text = path.read_text()
    assert re.search(r"^package actorgrpc\.v1;$", text, re.M)
    assert re.search(r'^syntax = "proto3";$', text, re.M)


def test_enum_zero_values_are_unspecified():
    for module in (value_pb2, mailbox_pb2, supervisor_pb2):
        for enum in module.DESCRIPTOR.enum_types_by_name.values():
            zero = enum.values_by_number[0].name
            assert zero.endswith("_UNSPECIFIED"), (enum.name, zero)
            prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"
            assert all(v.name.startswith(prefix) for v in enum.values), enum.name


def test_services_and_methods():
    mailbox = mailbox_pb2.DESCRIPTOR.services_by_name["Mailbox"]
    assert mailbox.full_name == "actorgrpc.v1.Mailbox"
    stream = mailbox.methods_by_name["Stream"]
    assert stream.client_streaming and stream.server_streaming
    assert stream.input_type.full_name == stream.output_type.full_name == "actorgrpc.v1.Envelope"
    send = mailbox.methods_by_name["Send"]
    assert not send.client_streaming and not send.server_streaming
    supervisor = supervisor_pb2.DESCRIPTOR.services_by_name["Supervisor"]
    assert supervisor.full_name == "actorgrpc.v1.Supervisor"
    assert {"Handshake", "Notify", "Info", "Lookup"} <= set(supervisor.methods_by_name)


def test_value_kinds():
    kinds = {f.name for f in value_pb2.Value.DESCRIPTOR.oneofs_by_name["kind"].fields}
    assert kinds == {
        "null_value",
        "bool_value",
        "int_value",
        "double_value",
        "string_value",
        "bytes_value",
        "list_value",
        "map_value",
        "actor_value",
        "pickled_value",
        "big_int_value",
    }


def test_every_error_code_has_an_error_class():
    codes = set(mailbox_pb2.ErrorCode.values()) - {mailbox_pb2.ERROR_CODE_UNSPECIFIED}
    classes = {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.ActorError)
    }
    assert codes == classes
