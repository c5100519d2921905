"""Requests built and checked before a call opens; replies as JSON with the service's own descriptors (issue 23.3, 23.4)."""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from google.protobuf import message_factory
from hypothesis import given, settings
from hypothesis import strategies as st

import easnb
import easnb.aio
from easnb.services import to_json

from .ledger import NOTE_URL, PROTO, UNKNOWN_URL, Ledger

pytest.importorskip("grpc_reflection", reason="the proto extra (grpcio-reflection) is not installed")

SECRET_URL = "type.googleapis.com/ledger.Secret"
STAMP_URL = "type.googleapis.com/google.protobuf.Timestamp"


@pytest.fixture(scope="module")
def ledger() -> Iterator[Ledger]:
    server = Ledger()
    yield server
    server.stop()


@pytest.fixture(params=["reflection", "proto"])
def client(ledger: Ledger, request: pytest.FixtureRequest) -> Iterator[Any]:
    with easnb.connect(ledger.endpoint) as conn:
        service = conn.service("ledger.Ledger") if request.param == "reflection" else conn.service(PROTO, "ledger.Ledger")
        service.source = request.param
        yield service


@pytest.fixture(scope="module")
def put(ledger: Ledger) -> Iterator[Any]:
    """The Put method from reflection (the pool that asks the server for what it lacks)."""
    with easnb.connect(ledger.endpoint) as conn:
        yield conn.service("ledger.Ledger").Put


def sent_nothing(ledger: Ledger, before: int) -> bool:
    return len(ledger.raw) == before


# -- 23.3: every request is built and checked before the call opens ----------------------------


def test_a_misspelt_field_in_a_client_stream_is_the_users_error_and_nothing_is_sent(ledger: Ledger, client: Any) -> None:
    before = len(ledger.raw)
    with pytest.raises(easnb.RequestError) as caught:
        client.Collect([{"name": "a", "n": 1}, {"nmae": "b", "n": 2}])
    error = caught.value
    assert error.field == "nmae" and "Request 2 of 2 to /ledger.Ledger/Collect" in error.message
    assert "did you mean 'name'" in error.message and "name (string), n (int32)" in error.hint
    assert "server" not in str(error).lower()
    assert sent_nothing(ledger, before)


@pytest.mark.parametrize(
    ("request_", "field", "words"),
    [
        ({"name": "a", "n": "abc"}, "n", "does not fit"),
        ({"name": "a", "n": 2**40}, "n", "does not fit"),
        ({"name": "a", "children": [{"name": "b"}, {"name": "c", "n": [1]}]}, "children[1].n", "does not fit"),
        ({"name": "a", "children": [{"name": "b", "nmae": "c"}]}, "children[0].nmae", "has no field 'nmae'"),
        ({"n": 1}, "name", "required field 'name' not set"),
        ({"name": "a", "children": [{"n": 1}]}, "children[0].name", "required field 'children[0].name' not set"),
        ({"name": "a", "blob": "not base64!"}, "blob", "does not fit"),
        ({"name": "a", "extra": {"@type": SECRET_URL, "cod": "x"}}, "extra.cod", "has no field 'cod'"),
        ({"name": "a", "extra": {"@type": UNKNOWN_URL, "@value": "%%%"}}, "extra", "not base64"),
        ({"name": "a", 7: 1}, "", "field names are text"),
    ],
)
def test_each_kind_of_mistake_names_its_field(ledger: Ledger, client: Any, request_: dict[str, Any], field: str, words: str) -> None:
    before = len(ledger.raw)
    for call in (lambda: client.Put(request_), lambda: client.Collect([{"name": "ok"}, request_]), lambda: list(client.Chat([request_]))):
        with pytest.raises(easnb.RequestError) as caught:
            call()
        assert caught.value.field == field and words in caught.value.message
    assert sent_nothing(ledger, before)


def test_a_generators_bad_request_cancels_the_call_and_is_reported(ledger: Ledger, client: Any) -> None:
    def entries() -> Iterator[dict[str, Any]]:
        yield {"name": "a", "n": 1}
        yield {"name": "b", "n": "two"}
        yield {"name": "c", "n": 3}

    with pytest.raises(easnb.RequestError) as caught:
        client.Collect(entries())
    assert caught.value.field == "n" and "Request 2 to /ledger.Ledger/Collect" in caught.value.message
    with pytest.raises(easnb.RequestError, match="Request 2 to /ledger.Ledger/Chat"):
        list(client.Chat(entries()))

    def broken() -> Iterator[dict[str, Any]]:
        yield {"name": "a"}
        raise ZeroDivisionError("the user's own bug")

    with pytest.raises(easnb.RequestError, match="ZeroDivisionError: the user's own bug"):
        client.Collect(broken())
    assert client.Collect(iter([{"name": "x", "n": 4}, {"name": "y", "n": 5}])).total == 9  # and the good stream still works


def test_client_streams_take_iterables_only(client: Any) -> None:
    for wrong in ({"name": "a"}, "[]"):
        with pytest.raises(easnb.RequestError, match="client-streaming"):
            client.Collect(wrong)
    with pytest.raises(easnb.RequestError, match="takes a ledger.Entry"):
        client.Put([{"name": "a"}])


def test_aio_reports_the_same_errors_not_cancelled_errors(ledger: Ledger) -> None:
    async def run() -> list[Any]:
        found: list[Any] = []
        async with easnb.aio.connect(ledger.endpoint) as conn:
            client = await conn.service("ledger.Ledger")

            async def entries() -> AsyncIterator[dict[str, Any]]:
                yield {"name": "a", "n": 1}
                yield {"nmae": "b", "n": 2}

            for attempt in (
                lambda: client.Collect([{"name": "a", "n": 1}, {"nmae": "b", "n": 2}]),
                lambda: client.Collect(entries()),
                lambda: client.Put({"n": 1}),
            ):
                try:
                    await attempt()
                except Exception as exc:  # noqa: BLE001 - the type is what is checked
                    found.append(exc)
            try:
                async for _ in await client.Chat(entries()):
                    pass
            except Exception as exc:  # noqa: BLE001
                found.append(exc)
            found.append((await client.Collect(entries_ok())).total)
        return found

    async def entries_ok() -> AsyncIterator[dict[str, Any]]:
        for n in (1, 2, 3):
            yield {"name": str(n), "n": n}

    *errors, total = asyncio.run(run())
    assert [type(e) for e in errors] == [easnb.RequestError] * 4
    assert [e.field for e in errors] == ["nmae", "nmae", "name", "nmae"]
    assert total == 6


@settings(max_examples=40, deadline=None)
@given(st.text(min_size=1, max_size=12).filter(lambda k: k not in {"name", "n", "blob", "children", "extra"}))
def test_any_unknown_field_name_is_refused_by_name(put: Any, key: str) -> None:
    with pytest.raises(easnb.RequestError) as caught:
        put.message({"name": "a", key: 1})
    assert caught.value.field == key


# -- 23.4: bytes as they are; Any through the service's own descriptors --------------------------


def test_bytes_reach_bytes_fields_as_they_are(ledger: Ledger, client: Any) -> None:
    raw = b"alpha beta\x00\xff"
    ledger.raw.clear()
    client.Put({"name": "a", "blob": raw})
    client.Put(name="b", blob=raw)
    client.Put({"name": "c", "blob": base64.b64encode(raw).decode()})  # JSON: base64 text
    client.Put(json.dumps({"name": "d", "blob": base64.b64encode(raw).decode()}))
    client.Put({"name": "e", "children": [{"name": "f", "blob": bytearray(raw)}]})
    client.Collect([{"name": "g", "blob": raw}])
    entries = [ledger.Entry.FromString(r) for r in ledger.raw]
    assert [e.blob for e in entries[:4]] == [raw] * 4
    assert entries[4].children[0].blob == raw and entries[5].blob == raw


def test_any_in_every_position_prints_as_json(ledger: Ledger, client: Any) -> None:
    reply = to_json(client.Put({"name": "a", "n": 3}))
    secret = {
        "@type": SECRET_URL, "code": "a", "when": "1970-01-02T00:00:00Z",
        "inner": {"@type": UNKNOWN_URL, "@value": base64.b64encode(b"\x08\x01").decode()},
    }
    assert reply["payload"] == secret
    assert reply["items"] == [
        {**secret, "code": "first"},
        {"@type": UNKNOWN_URL, "@value": base64.b64encode(b"\x00\xffraw").decode()},
        {"@type": STAMP_URL, "value": "1970-01-01T00:00:05Z"},
    ]
    named = {k: v for k, v in reply["named"].items() if k != "note"}
    assert named == {"secret": {**secret, "code": "named"}, "unknown": {"@type": UNKNOWN_URL, "@value": "eHl6"}}
    assert reply["numbered"] == {"7": {"@type": STAMP_URL, "value": "1970-01-01T00:00:05Z"}}
    assert reply["total"] == str(2**62 + 1) and reply["entry"]["name"] == "a"
    json.dumps(reply)  # JSON-ready


def test_a_type_only_the_servers_reflection_knows_is_asked_for(ledger: Ledger, client: Any) -> None:
    reply = client.Put({"name": "a"})
    note = client.to_json(reply)["named"]["note"]
    if client.source == "reflection":  # notes.Note is in a file no method refers to: reflection is asked for it
        assert note == {"@type": NOTE_URL, "text": "hi"}
    else:  # the .proto does not know it: printed as grpcurl does
        assert note == {"@type": NOTE_URL, "@value": base64.b64encode(b"\n\x02hi").decode()}
    assert client.Put.to_json(reply)["named"]["note"] == note
    if client.source == "reflection":  # and in a request
        ledger.raw.clear()
        client.Put({"name": "n", "extra": {"@type": NOTE_URL, "text": "back"}})
        assert ledger.Entry.FromString(ledger.raw[0]).extra.type_url == NOTE_URL


def test_any_in_a_request_both_ways(ledger: Ledger, client: Any) -> None:
    ledger.raw.clear()
    client.Put({"name": "a", "extra": {"@type": SECRET_URL, "code": "x", "when": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)}})
    client.Put({"name": "b", "extra": {"@type": UNKNOWN_URL, "@value": "CAE="}})
    printed = to_json(client.Put({"name": "c"}))["payload"]
    client.Put({"name": "d", "extra": printed})  # what easnb prints goes back in as it is
    extras = [ledger.Entry.FromString(r).extra for r in ledger.raw]
    first = ledger.Secret.FromString(extras[0].value)
    assert extras[0].type_url == SECRET_URL and first.code == "x" and first.when.ToJsonString() == "2026-01-01T00:00:00Z"
    assert (extras[1].type_url, extras[1].value) == (UNKNOWN_URL, b"\x08\x01")
    assert ledger.Secret.FromString(extras[3].value).inner.value == b"\x08\x01"


def test_a_hostile_any_never_raises(client: Any) -> None:
    holder = client.methods["Put"].response_class()
    any_class = message_factory.GetMessageClass(holder.DESCRIPTOR.fields_by_name["items"].message_type)
    nested = any_class(type_url=UNKNOWN_URL, value=b"x")
    for _ in range(40):  # Any inside Any, deeper than anyone sends
        outer = any_class()
        outer.Pack(nested)
        nested = outer
    holder.items.extend([nested, any_class(type_url=SECRET_URL, value=b"\xff\xff\xff"), any_class(type_url="", value=b"\x01")])
    printed = to_json(holder)
    assert printed["items"][1] == {"@type": SECRET_URL, "@value": "////"}
    assert printed["items"][2] == {"@type": "", "@value": "AQ=="}
    depth, node = 0, printed["items"][0]
    while "value" in node and isinstance(node["value"], dict):
        node, depth = node["value"], depth + 1
    assert 10 < depth < 40 and "@value" in node


def test_unknown_types_are_looked_up_a_bounded_number_of_times(ledger: Ledger) -> None:
    with easnb.connect(ledger.endpoint) as conn:
        client = conn.service("ledger.Ledger")
        holder = client.methods["Put"].response_class()
        any_class = message_factory.GetMessageClass(holder.DESCRIPTOR.fields_by_name["items"].message_type)
        holder.items.extend(any_class(type_url=f"type.googleapis.com/nowhere.T{i}", value=b"x") for i in range(60))
        holder.items.add(type_url="type.googleapis.com/" + "x" * 5000, value=b"y")
        before = ledger.reflection_calls
        printed = client.to_json(holder)
        asked = ledger.reflection_calls - before
    assert all("@value" in item for item in printed["items"]) and len(printed["items"]) == 61
    assert 1 <= asked <= 16  # at most MAX_LOOKUPS types, each one look-up


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EASNB_TOKEN"}
    return subprocess.run([sys.executable, "-m", "easnb", *args], capture_output=True, text=True, env=env, timeout=60)


def test_easnb_call_prints_any_as_json_and_never_a_traceback(ledger: Ledger) -> None:
    for extra in ((), ("--proto", str(PROTO))):
        put = cli("call", ledger.endpoint, "ledger.Ledger/Put", "--data", '{"name": "cli"}', *extra)
        assert put.returncode == 0, put.stderr
        printed = json.loads(put.stdout)
        assert printed["payload"]["@type"] == SECRET_URL and "Traceback" not in put.stderr
        assert ("text" in printed["named"]["note"]) == (not extra)  # reflection knows notes.Note; the .proto does not
    typo = cli("call", ledger.endpoint, "ledger.Ledger/Collect", "--data", '[{"name": "a", "n": 1}, {"nmae": "b", "n": 2}]')
    assert typo.returncode == 2 and "no field 'nmae' (did you mean 'name'?)" in typo.stderr
    assert "Traceback" not in typo.stderr and "server's side" not in typo.stderr
    missing = cli("call", ledger.endpoint, "ledger.Ledger/Put", "--data", '{"n": 1}')
    assert missing.returncode == 2 and "required field 'name' not set" in missing.stderr


def test_service_inspector_shows_any_as_json(ledger: Ledger) -> None:
    pytest.importorskip("ipywidgets")
    with easnb.connect(ledger.endpoint) as conn:
        inspector = easnb.ServiceInspector(conn, "ledger.Ledger")
        inspector.controls["name"].value = "widget"
        inspector.call(wait=True)
        assert inspector.replies and inspector.replies[0]["payload"]["code"] == "widget", inspector.status.value
        assert "ledger.Secret" in inspector.output.value and inspector.replies[0]["named"]["note"]["text"] == "hi"
        inspector.view.value = "JSON"
        assert "@value" in inspector.output.value and "TypeError" not in inspector.output.value


_KEYS = st.sampled_from(["name", "n", "blob", "children", "extra", "@type", "@value", "value", "code", "nmae", "0"])
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8) | st.binary(max_size=8)
    | st.sampled_from([SECRET_URL, UNKNOWN_URL, STAMP_URL, "type.googleapis.com/google.protobuf.Any", "CAE=", "2026-01-01T00:00:00Z"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, max_size=5))
def test_whatever_a_request_dict_holds_it_is_built_or_refused_by_name(put: Any, value: dict[str, Any]) -> None:
    try:
        data = put.encode(value)
    except easnb.RequestError as exc:
        assert exc.message and isinstance(exc.field, str)
    else:
        assert put.request_class.FromString(data).IsInitialized()
