"""A server's reflection is data: nothing it sends reaches protobuf's pool or the terminal unchecked.

The hostile server (``tests/hostile_reflection.py``) serves FileDescriptorProto bytes of the
test's choosing. Answers that crashed the process before run in a subprocess, so a crash is
a failed test, not a dead test run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import grpc
import pytest

import easnb
from easnb.descriptor_files import Limits

pytest.importorskip("grpc_reflection", reason="the proto extra (grpcio-reflection) is not installed")

from .hostile_reflection import HostileReflection, Script, cyclic, deep, file, garbage, references, service_file  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def self_import() -> Script:
    a = service_file("a.proto", "a", "A", deps=("a.proto", "google/protobuf/empty.proto"))
    return Script({"a.proto": a}, {"a.A": "a.proto"}, ["a.A"])


def long_cycle() -> Script:
    files = {f"f{i}.proto": file(f"f{i}.proto", f"p{i}", (f"f{(i + 1) % 5}.proto",)) for i in range(1, 5)}
    files["f0.proto"] = service_file("f0.proto", "a", "A", deps=("f1.proto", "google/protobuf/empty.proto"))
    return Script(files, {"a.A": "f0.proto"}, ["a.A"])


HOSTILE = {  # scenario -> what the error must say
    "cyclic": (cyclic, "cycle (a.proto -> b.proto -> a.proto)"),
    "long-cycle": (long_cycle, "cycle (f0.proto -> f1.proto -> f2.proto -> f3.proto -> f4.proto -> f0.proto)"),
    "self-import": (self_import, "cycle (a.proto -> a.proto)"),
    "deep-500": (lambda: deep(500), "no file descriptor"),  # past protobuf's own decoding depth
    "deep-60": (lambda: deep(60), "nests message types more than 32 deep"),  # parses, refused by easnb
    "garbage": (garbage, "no file descriptor"),
    "references-600": (references, "reach each other through fields up to 600 deep, over 200"),
}
SYMBOL = {"cyclic": "a.A", "long-cycle": "a.A", "self-import": "a.A", "deep-500": "d.D", "deep-60": "d.D", "garbage": "g.G",
          "references-600": "r.R"}


@pytest.fixture(params=sorted(HOSTILE))
def hostile(request: pytest.FixtureRequest) -> Iterator[tuple[HostileReflection, str, str]]:
    make, says = HOSTILE[request.param]
    with HostileReflection(make()) as server:
        yield server, SYMBOL[request.param], says


def run(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", code] if code else [sys.executable, "-m", "easnb", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=ENV, cwd=ROOT)


def test_cli_refuses_a_hostile_graph_with_a_typed_error(hostile: tuple[HostileReflection, str, str]) -> None:
    server, symbol, says = hostile
    for command, *args in (["describe", symbol], ["list", symbol], ["call", f"{symbol}/Get", "-d", "{}"]):
        done = run(command, server.endpoint, *args)
        assert done.returncode == 1, (command, done.returncode, done.stderr)  # -11 was a segfault
        assert done.stderr.startswith("error: ") and says in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert "Hint: " in done.stderr
        if says.startswith("cycle") is False:
            break  # the other commands take the same path: one is enough past the crashing kind


CODE_SURFACES = textwrap.dedent('''
    import asyncio, json, sys
    import easnb, easnb.aio
    endpoint, symbol = sys.argv[1:]
    seen = {}
    with easnb.connect(endpoint) as conn:
        try:
            conn.service(symbol)
        except easnb.ReflectionError as exc:
            seen["service"] = exc.message
        seen["services"] = conn.services()
        bench = easnb.inspect(conn)  # the Service tab loads the first service by itself
        seen["inspect"] = bench.service.body.children[0].value

    async def main():
        async with easnb.aio.connect(endpoint) as aconn:
            try:
                await aconn.service(symbol)
            except easnb.ReflectionError as exc:
                seen["aio"] = exc.message
    asyncio.run(main())
    print(json.dumps(seen))
''')


def test_code_and_widget_surfaces_refuse_a_hostile_graph(hostile: tuple[HostileReflection, str, str]) -> None:
    server, symbol, says = hostile
    done = subprocess.run([sys.executable, "-c", CODE_SURFACES, server.endpoint, symbol],
                          capture_output=True, text=True, timeout=120, env=ENV, cwd=ROOT)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    seen = json.loads(done.stdout.splitlines()[-1])
    assert says in seen["service"] and says in seen["aio"]
    assert seen["services"] == [symbol]
    assert "ReflectionError" in seen["inspect"] and "cannot build" not in seen["inspect"]


def reflecting(script: Script, timeout: float = 5.0, limits: Limits = Limits()) -> tuple[HostileReflection, easnb.Connection]:
    server = HostileReflection(script)
    return server, easnb.connect(server.endpoint, timeout=timeout)


@pytest.mark.parametrize("code", [grpc.StatusCode.INTERNAL, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNIMPLEMENTED])
def test_an_error_answer_other_than_not_found_is_a_reflection_error(code: grpc.StatusCode) -> None:
    script = cyclic()
    script.error_code = code.value[0]
    with HostileReflection(script) as server, easnb.connect(server.endpoint) as conn:
        with pytest.raises(easnb.ReflectionError, match=f"code {code.value[0]}: 'not here'"):
            conn.service("a.A")


def test_an_error_answer_to_the_list_of_services() -> None:
    from grpc_reflection.v1alpha import reflection_pb2

    reply = reflection_pb2.ServerReflectionResponse()
    reply.error_response.error_code, reply.error_response.error_message = 13, "broken\x1b[2J"
    script = Script(list_reply=reply.SerializeToString())
    with HostileReflection(script) as server, easnb.connect(server.endpoint) as conn:
        with pytest.raises(easnb.ReflectionError, match="code 13"):
            conn.services()
    with HostileReflection(Script(list_reply=b"\xff\xff garbage")) as server, easnb.connect(server.endpoint) as conn:
        with pytest.raises(easnb.ReflectionError, match="not a ServerReflectionResponse"):
            conn.services()
    with HostileReflection(Script(list_reply=reply.SerializeToString())) as server:
        done = run("list", server.endpoint)
    assert done.returncode == 1 and "\\x1b[2J" in done.stderr and "\x1b" not in done.stderr, done.stderr


def test_a_stream_that_ends_without_an_answer() -> None:
    script = cyclic()
    script.end_early = True
    with HostileReflection(script) as server, easnb.connect(server.endpoint) as conn:
        with pytest.raises(easnb.ReflectionError, match="ended without answering"):
            conn.service("a.A")


def test_a_failed_call_is_typed_by_its_code() -> None:
    script = cyclic()
    script.abort = grpc.StatusCode.DATA_LOSS
    with HostileReflection(script) as server, easnb.connect(server.endpoint) as conn:
        with pytest.raises(easnb.ServerError, match="DATA_LOSS"):
            conn.service("a.A")


def chain(length: int) -> Script:
    """``c0.proto`` (the service) imports c1.proto, which imports c2.proto, ... c{length-1}.proto."""
    files = {f"c{i}.proto": file(f"c{i}.proto", f"c{i}", (f"c{i + 1}.proto",) if i + 1 < length else ()) for i in range(1, length)}
    files["c0.proto"] = service_file("c0.proto", "c", "C", deps=("c1.proto", "google/protobuf/empty.proto"))
    return Script(files, {"c.C": "c0.proto"}, ["c.C"])


def test_one_deadline_bounds_the_whole_look_up() -> None:
    script = chain(5)
    with HostileReflection(script) as server, easnb.connect(server.endpoint, timeout=2.0) as conn:
        conn.services()
        script.delay = 1.5  # each file answered after 1.5 s: 7.5 s in all, were each given its own deadline
        started = time.monotonic()
        with pytest.raises(easnb.DeadlineError):
            conn.service("c.C")
        took = time.monotonic() - started
    assert took < 5.0, took


def test_a_long_import_chain_is_refused_and_a_normal_one_works() -> None:
    with HostileReflection(chain(70)) as server, easnb.connect(server.endpoint) as conn:
        with pytest.raises(easnb.ReflectionError, match="import chain over 64 files deep"):
            conn.service("c.C")
    with HostileReflection(chain(20)) as server, easnb.connect(server.endpoint) as conn:
        assert [m.name for m in conn.service("c.C").descriptor.methods] == ["Get"]


def test_a_chain_of_field_types_below_the_limit_works() -> None:
    with HostileReflection(references(90)) as server, easnb.connect(server.endpoint) as conn:
        method = conn.service("r.R").methods["Get"]
        value: dict[str, Any] = {"s": "end"}
        for _ in range(89):
            value = {"next": value}
        assert method.message(value).ByteSize() > 89


def test_size_and_count_limits() -> None:
    from easnb.reflection import reflect

    with HostileReflection(chain(20)) as server, easnb.connect(server.endpoint) as conn:
        with pytest.raises(easnb.ReflectionError, match="over 10 files"):
            reflect(conn, Limits(files=10)).service("c.C")
        with pytest.raises(easnb.ReflectionError, match="over 300 bytes"):
            reflect(conn, Limits(total_bytes=300)).service("c.C")


HUGE = textwrap.dedent('''
    import json, resource, sys, time
    import easnb
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with easnb.connect(sys.argv[1], timeout=60) as conn:
        try:
            conn.service("h.H")
            outcome = "built"
        except easnb.EasnbError as exc:
            outcome = type(exc).__name__ + ": " + exc.message
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - started, "grown_mib": grown}))
''')


def test_a_200_mib_descriptor_is_refused_quickly_in_little_memory() -> None:
    from google.protobuf import descriptor_pb2

    comment = descriptor_pb2.SourceCodeInfo(location=[descriptor_pb2.SourceCodeInfo.Location(leading_comments="x" * (200 << 20))])
    huge = service_file("h.proto", "h", "H") + b"\x4a" + _length(comment.ByteSize()) + comment.SerializeToString()  # field 9
    del comment
    with HostileReflection(Script({"h.proto": huge}, {"h.H": "h.proto"}, ["h.H"])) as server:
        done = subprocess.run([sys.executable, "-c", HUGE, server.endpoint], capture_output=True, text=True, timeout=120, env=ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout)
    assert seen["outcome"].startswith("ReflectionError: ") and "over 67108864 bytes" in seen["outcome"], seen
    assert seen["grown_mib"] < 100 and seen["seconds"] < 20, seen  # it took 1 GB and 23 s


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def orgs(deps: tuple[str, ...]) -> Script:
    from google.protobuf import descriptor_pb2 as d

    field = d.FieldDescriptorProto(name="created", number=1, type=d.FieldDescriptorProto.TYPE_MESSAGE,
                                   label=d.FieldDescriptorProto.LABEL_OPTIONAL, type_name=".google.protobuf.Timestamp")
    message = d.DescriptorProto(name="Org", field=[field])
    f = service_file("orgs.proto", "org", "Orgs", request=".org.Org", deps=deps, messages=(message,))
    return Script({"orgs.proto": f}, {"org.Orgs": "orgs.proto"}, ["org.Orgs"])


def test_well_known_types_are_filled_in_from_protobuf() -> None:
    script = orgs(("google/protobuf/timestamp.proto",))  # the server answers NOT_FOUND for it, as grpc-js servers do
    with HostileReflection(script) as server, easnb.connect(server.endpoint) as conn:
        method = conn.service("org.Orgs").methods["Get"]
        message = method.message({"created": "2026-11-30T08:00:00Z"})
        assert message.created.seconds == int(datetime(2026, 11, 30, 8, tzinfo=timezone.utc).timestamp())
        assert "google/protobuf/timestamp.proto" in script.asked  # asked first, filled in only when refused


def test_any_other_missing_file_is_named() -> None:
    script = orgs(("google/protobuf/timestamp.proto", "org/common.proto"))
    with HostileReflection(script) as server, easnb.connect(server.endpoint) as conn:
        with pytest.raises(easnb.ReflectionError, match="'orgs.proto' imports 'org/common.proto', and the server's reflection answers NOT_FOUND"):
            conn.service("org.Orgs")
        done = run("describe", server.endpoint, "org.Orgs")
    assert done.returncode == 1 and "org/common.proto" in done.stderr and "Traceback" not in done.stderr


def test_an_answer_with_another_file_than_asked_does_not_loop() -> None:
    script = chain(3)
    script.files["c1.proto"] = script.files["c2.proto"]  # asked for c1.proto, sends c2.proto
    with HostileReflection(script) as server, easnb.connect(server.endpoint) as conn:
        with pytest.raises(easnb.ReflectionError, match="asked for 'c1.proto' and sent other files"):
            conn.service("c.C")


def test_list_and_describe_make_control_characters_visible() -> None:
    evil = "evil\x1b]0;owned\x07\x1b[2J\u202eSvc"
    script = cyclic()
    script.services = [evil, "a.A"]
    with HostileReflection(script) as server:
        listed = run("list", server.endpoint)
        missing = run("describe", server.endpoint, "nope.Nope")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == ["a.A", "evil\\x1b]0;owned\\x07\\x1b[2J\\u202eSvc"]
    assert missing.returncode == 1 and "\x1b" not in missing.stderr and "\u202e" not in missing.stderr
    assert "'evil\\x1b]0;owned\\x07\\x1b[2J\\u202eSvc'" in missing.stderr  # the list of what is offered, escaped


def odd_maps() -> Script:
    """A map entry as no compiler writes it (its second field is not called ``value``), which protobuf accepts."""
    from google.protobuf import descriptor_pb2 as d

    kind = d.FieldDescriptorProto
    odd = d.DescriptorProto(name="OddEntry", options=d.MessageOptions(map_entry=True), field=[
        kind(name="key", number=1, label=kind.LABEL_OPTIONAL, type=kind.TYPE_STRING),
        kind(name="val", number=2, label=kind.LABEL_OPTIONAL, type=kind.TYPE_STRING),
    ])
    m = d.DescriptorProto(name="M", nested_type=[odd], field=[
        kind(name="odd", number=1, label=kind.LABEL_REPEATED, type=kind.TYPE_MESSAGE, type_name=".m.M.OddEntry"),
    ])
    return Script({"m.proto": service_file("m.proto", "m", "S", request=".m.M", deps=(), messages=(m,))}, {"m.S": "m.proto", "m.M": "m.proto"}, ["m.S"])


def test_map_entries_protoc_would_not_write_are_refused() -> None:
    """An entry whose second field is not ``value`` (protobuf accepts it) made ``to_json`` of a reply raise KeyError."""
    with HostileReflection(odd_maps()) as server, easnb.connect(server.endpoint) as conn:
        with pytest.raises(easnb.ReflectionError, match="'m.M.OddEntry' as a map entry, but not as protoc writes one"):
            conn.service("m.S")
        done = run("describe", server.endpoint, "m.M")
    assert done.returncode == 1 and "not as protoc writes one" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_server_copy_of_a_file_protobuf_ships_is_replaced_by_protobufs() -> None:
    """A server's own ``google/protobuf/timestamp.proto`` (``seconds`` a string) got protobuf's Timestamp
    handling by name: building from a datetime raised TypeError, printing a reply AttributeError."""
    from google.protobuf import descriptor_pb2 as d

    kind = d.FieldDescriptorProto
    fake = d.FileDescriptorProto(name="google/protobuf/timestamp.proto", package="google.protobuf", syntax="proto3", message_type=[
        d.DescriptorProto(name="Timestamp", field=[kind(name="seconds", number=1, label=kind.LABEL_OPTIONAL, type=kind.TYPE_STRING)]),
    ])
    script = orgs(("google/protobuf/timestamp.proto",))
    script.files["google/protobuf/timestamp.proto"] = fake.SerializeToString()
    with HostileReflection(script) as server, easnb.connect(server.endpoint) as conn:
        method = conn.service("org.Orgs").methods["Get"]
        message = method.message({"created": datetime(2026, 11, 30, 8, tzinfo=timezone.utc)})
        assert method.to_json(message) == {"created": "2026-11-30T08:00:00Z"}


@pytest.mark.parametrize("package,outer", [("google.protobuf", ()), ("google", ("protobuf",)), ("", ("google", "protobuf"))],
                         ids=["package", "nested-in-google", "nested-from-root"])
def test_google_protobuf_types_declared_by_a_server_file_are_refused(package: str, outer: tuple[str, ...]) -> None:
    """``google.protobuf.Any`` with an int64 ``type_url``, in a file of the server's own: printing a reply
    raised AttributeError and building a request TypeError."""
    from google.protobuf import descriptor_pb2 as d

    kind = d.FieldDescriptorProto
    evil = d.DescriptorProto(name="Any", field=[kind(name="type_url", number=1, label=kind.LABEL_OPTIONAL, type=kind.TYPE_INT64)])
    for name in reversed(outer):
        evil = d.DescriptorProto(name=name, nested_type=[evil])
    holder = d.DescriptorProto(name="M", field=[kind(name="a", number=1, label=kind.LABEL_OPTIONAL, type=kind.TYPE_MESSAGE,
                                                     type_name=".google.protobuf.Any")])
    files = {"a.proto": service_file("a.proto", "a", "S", request=".a.M", deps=("evil.proto",), messages=(holder,)),
             "evil.proto": file("evil.proto", package, message_type=[evil])}
    with HostileReflection(Script(files, {"a.S": "a.proto"}, ["a.S"])) as server, easnb.connect(server.endpoint) as conn:
        with pytest.raises(easnb.ReflectionError, match=r"'evil.proto' declares 'google\.protobuf(\.Any)?': only protobuf's own"):
            conn.service("a.S")


def _enum_values(count: int) -> bytes:
    """A serialized EnumDescriptorProto ``E`` with ``count`` values (by hand: protobuf's classes take seconds)."""
    from .hostile_reflection import _field

    values = b"".join(_field(2, _field(1, b"V%d" % i) + b"\x10" + _length(i)) for i in range(count))
    return _field(1, b"E") + values


def test_millions_of_declarations_are_refused_within_the_deadline() -> None:
    """3M enum values (48 MB, under the byte limit) took protobuf 36 s to build, far past a 5 s timeout;
    refused before anything is built now, past 250,000 declarations (here 260,000)."""
    from easnb.reflection import reflect

    f = service_file("b.proto", "b", "B") + _field_of(5, _enum_values(260_000))  # 5: enum_type
    with HostileReflection(Script({"b.proto": f}, {"b.B": "b.proto"}, ["b.B"])) as server:
        with easnb.connect(server.endpoint, timeout=5) as conn:
            started = time.monotonic()
            with pytest.raises(easnb.ReflectionError, match="declare over 250000 types, fields and values"):
                conn.service("b.B")
            assert time.monotonic() - started < 8
    small = service_file("s.proto", "s", "S") + _field_of(5, _enum_values(2000))
    with HostileReflection(Script({"s.proto": small}, {"s.S": "s.proto"}, ["s.S"])) as server, easnb.connect(server.endpoint) as conn:
        with pytest.raises(easnb.ReflectionError, match="declare over 1000 types"):
            reflect(conn, Limits(elements=1000)).service("s.S")
        assert conn.service("s.S").name == "s.S"  # the limit, not the shape, refused it


def _field_of(number: int, data: bytes) -> bytes:
    from .hostile_reflection import _field

    return _field(number, data)


def test_the_reference_bound_counts_rings_and_chains() -> None:
    from google.protobuf import descriptor_pb2 as d
    from google.protobuf import descriptor_pool

    from easnb.descriptor_files import all_messages, reference_bound

    kind = d.FieldDescriptorProto

    def ring(count: int, closed: bool) -> Any:
        messages = [d.DescriptorProto(name=f"A{i}", field=[kind(
            name="next", number=1, label=kind.LABEL_OPTIONAL, type=kind.TYPE_MESSAGE, type_name=f".r.A{(i + 1) % count}",
        )] if closed or i + 1 < count else []) for i in range(count)]
        pool = descriptor_pool.DescriptorPool()
        pool.Add(d.FileDescriptorProto(name="r.proto", package="r", message_type=messages, syntax="proto3"))
        return all_messages([pool.FindFileByName("r.proto")])

    assert reference_bound(ring(250, closed=True)) == 250  # one group of 250: entered anywhere, 250 deep
    assert reference_bound(ring(250, closed=False)) == 250
    assert reference_bound(ring(1, closed=True)) == 1  # a message holding itself, as trees do
    from google.protobuf import struct_pb2

    assert reference_bound([struct_pb2.Struct.DESCRIPTOR]) == 4  # Struct, its FieldsEntry, Value, ListValue: one group


def test_an_unbuildable_file_is_a_reflection_error() -> None:
    from google.protobuf import descriptor_pb2 as d

    kind = d.FieldDescriptorProto
    broken = d.DescriptorProto(name="M", field=[
        kind(name="x", number=1, label=kind.LABEL_OPTIONAL, type=kind.TYPE_MESSAGE, type_name=".nowhere.Missing"),
    ])
    script = Script({"u.proto": service_file("u.proto", "u", "U", request=".u.M", deps=(), messages=(broken,))}, {"u.U": "u.proto"}, ["u.U"])
    with HostileReflection(script) as server, easnb.connect(server.endpoint) as conn:
        with pytest.raises(easnb.ReflectionError, match="protobuf cannot build the server's 'u.proto'"):
            conn.service("u.U")
        with pytest.raises(easnb.ReflectionError):  # asked again: refused again, nothing half-built was kept
            conn.service("u.U")


def test_only_files_protobuf_ships_are_filled_in() -> None:
    from easnb.descriptor_files import shipped

    for name in ("google/protobuf/timestamp.proto", "google/protobuf/struct.proto", "google/protobuf/descriptor.proto",
                 "google/protobuf/compiler/plugin.proto"):
        proto = shipped(name)
        assert proto is not None and proto.name == name
    for name in ("google/protobuf/nope.proto", "google/protobuf/internal/x.proto", "google/protobuf/../../os.proto",
                 "google/api/annotations.proto", "timestamp.proto"):
        assert shipped(name) is None
