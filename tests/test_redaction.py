"""No form of the token survives redaction: plain whatever surrounds it, Bearer, base64, URL-encoded.

A real server on loopback quotes the token it received in every form in its error details;
``str(err)``, ``err.details``, the doctor's text and HTML, and a gateway in front of a backend
that does the same must show none of them.
"""

from __future__ import annotations

import ast
import base64
import html
import json
import re
import textwrap
import urllib.parse
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import easnb
from easnb.demo import Gateway
from easnb.doctor import doctor
from easnb.redaction import MASK, SHORT, base64_cores, redact

from .netparts import serve, unary_handler

TOKEN = "tok-EASNB-SECRET-7f3a9c"
AWKWARD = "Ab+/9=z~.-_Q"  # every character base64 and URL-encoding treat specially


def forms(token: str) -> dict[str, str]:
    """Text a server might send that holds ``token``: each way of quoting it the issue names, and more."""
    bearer = f"Bearer {token}"
    found = {
        "token=": f"denied: token={token}",
        "sentence": f"the token {token}.",
        "query": f"GET /v1/models?token={token}&x=1",
        "path": f"/keys/{token}/meta",
        "dash": f"key-{token}",
        "quoted": f"'{token}'",
        "glued": f"x{token}y",
        "bearer": f"authorization: {bearer}",
        "url": urllib.parse.quote(token, safe=""),
        "url bearer": f"h={urllib.parse.quote(bearer, safe='')}",
        "url plus": urllib.parse.quote_plus(bearer),
        "url lower": "".join(c if c.isalnum() else f"%{ord(c):02x}" for c in bearer),
    }
    for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
        for prefix in (b"", b"a", b"ab", b"authorization: "):
            found[f"{name} {prefix!r}"] = encode(prefix + token.encode()).decode()
            found[f"{name} bearer {prefix!r}"] = encode(prefix + bearer.encode()).decode().rstrip("=")
    return found


def leaks(text: str, token: str) -> list[str]:
    """Which forms of ``token`` still show in ``text``."""
    shown = [form for form in (text, urllib.parse.unquote(text), urllib.parse.unquote_plus(text)) if token in form]
    return shown + [core for core in base64_cores(token.encode()) if core in text]


@pytest.mark.parametrize("token", [TOKEN, AWKWARD])
@pytest.mark.parametrize("form", list(forms(TOKEN)))
def test_every_form_is_removed(token: str, form: str) -> None:
    text = forms(token)[form]
    assert leaks(text, token), "the form should hold the token before redaction"
    cleaned = redact(text, token)
    assert not leaks(cleaned, token) and MASK in cleaned, cleaned


def test_the_url_form_is_decoded_and_checked() -> None:
    for text in (forms(AWKWARD)["url lower"], forms(AWKWARD)["url plus"]):
        assert AWKWARD in urllib.parse.unquote_plus(text)
        assert AWKWARD not in urllib.parse.unquote_plus(redact(text, AWKWARD))


def test_a_token_object_is_redacted_too() -> None:
    from easnb.credentials import Token

    assert redact(f"token={TOKEN}", Token(TOKEN)) == "token=***"


def test_very_short_tokens_keep_the_whole_word_rule() -> None:
    assert len("on") < SHORT
    assert redact("failed to connect to all addresses", "t") == "failed to connect to all addresses"
    assert redact("failed to connect to all addresses", "on") == "failed to connect to all addresses"
    assert redact("token=ab1; key-ab1 (ab1.)", "ab1") == "token=***; key-*** (***.)"
    assert redact("xab1 ab12", "ab1") == "xab1 ab12"


@settings(max_examples=200, deadline=None)
@given(
    token=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=SHORT, max_size=64),
    before=st.binary(max_size=20),
    after=st.binary(max_size=20),
)
def test_any_token_in_any_base64_text_is_removed(token: str, before: bytes, after: bytes) -> None:
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(before + token.encode() + after).decode()
        assert any(core in text for core in base64_cores(token.encode()))
        cleaned = redact(text, token)
        assert not leaks(cleaned, token)
        # at most two characters each side of the mask are shared with the neighbours: under 12 bits of the token
        assert len(cleaned) - len(MASK) <= len(text) - len(token.encode()) * 4 // 3 + 4


@settings(max_examples=200, deadline=None)
@given(
    token=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=SHORT, max_size=64),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
)
def test_any_token_anywhere_in_text_is_removed(token: str, before: str, after: str) -> None:
    for form in (token, f"Bearer {token}", urllib.parse.quote(token, safe=""), urllib.parse.quote_plus(f"Bearer {token}")):
        assert not leaks(redact(before + form + after, token), token)


# -- a real server that quotes the token back ----------------------------------------------------


def quoting_server() -> Iterator[str]:
    def refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
        sent = dict(context.invocation_metadata()).get("authorization", "")
        token = sent.removeprefix("Bearer ")
        context.abort(grpc.StatusCode.UNAUTHENTICATED, " | ".join(forms(token).values()) + f" | got {sent}")

    server, port = serve([unary_handler("inference.GRPCInferenceService", {"ServerLive": refuse})])
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None).wait()


@pytest.fixture()
def quoting() -> Iterator[str]:
    yield from quoting_server()


def test_errors_from_a_server_quoting_the_token_show_none_of_it(quoting: str) -> None:
    with easnb.connect(quoting, token=TOKEN) as conn:
        with pytest.raises(easnb.AuthenticationError) as info:
            conn.live()
    error = info.value
    assert "denied: token=***" in error.details and "/keys/***/meta" in error.details
    for text in (str(error), repr(error), error.details, error.message):
        assert not leaks(text, TOKEN), text


def test_attached_status_details_holding_the_token_are_dropped() -> None:
    from easnb import _proto

    def fail(request: bytes, context: grpc.ServicerContext) -> bytes:
        sent = dict(context.invocation_metadata()).get("authorization", "")
        details = [
            {"type_url": "type.googleapis.com/helloworld.HelloRequest", "value": _proto.HelloRequest(name=sent).SerializeToString()},
            {"type_url": "type.googleapis.com/helloworld.HelloRequest", "value": _proto.HelloRequest(name="kept").SerializeToString()},
        ]
        status = _proto.message_class("easnb.rpc.Status")(code=3, message="bad", details=details)
        context.abort_with_status(_Status(grpc.StatusCode.INVALID_ARGUMENT, "bad", status.SerializeToString()))
        return b""

    server, port = serve([unary_handler("inference.GRPCInferenceService", {"ServerLive": fail})])
    try:
        with easnb.connect(f"127.0.0.1:{port}", token=TOKEN) as conn:
            with pytest.raises(easnb.InvalidArgumentError) as info:
                conn.live()
    finally:
        server.stop(None).wait()
    (kept,) = info.value.status_details
    assert _proto.HelloRequest.FromString(kept.value).name == "kept"
    assert "1 attached detail(s) held the token and were dropped" in str(info.value)


class _Status(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, packed: bytes) -> None:
        self.code, self.details = code, details
        self.trailing_metadata = (("grpc-status-details-bin", packed),)


@pytest.mark.parametrize("endpoint", [f"http://h:80/?token={TOKEN}", f"h:80/keys/{TOKEN}"])
def test_a_token_pasted_into_the_endpoint_stays_out_of_the_error(endpoint: str) -> None:
    import easnb.aio

    for connect in (easnb.connect, easnb.aio.connect):
        with pytest.raises(easnb.EndpointError) as info:
            connect(endpoint, token=TOKEN)
        assert "***" in str(info.value) and not leaks(str(info.value), TOKEN) and not leaks(repr(info.value), TOKEN)


def test_the_doctor_shows_none_of_it(quoting: str) -> None:
    pasted = doctor(f"http://{quoting}/?token={TOKEN}", TOKEN, timeout=5)  # a token pasted into the endpoint
    assert pasted.failed is not None and pasted.failed.name == "endpoint" and "token=***" in repr(pasted)
    quoted = doctor(quoting, TOKEN, timeout=5)
    assert quoted.failed is not None and quoted.failed.name == "token", repr(quoted)
    assert "/keys/***/meta" in repr(quoted)
    for found in (pasted, quoted):
        html = found._repr_html_()
        for text in (repr(found), html, html.replace("&amp;", "&"), *(s.detail + s.hint for s in found.steps)):
            assert not leaks(text, TOKEN), text


def test_an_error_inside_a_stream_shows_none_of_it() -> None:
    import numpy as np

    from easnb import _proto
    from easnb.inference import decode_request
    from easnb.stream_wire import encode_stream_response

    def refuse_each(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        sent = dict(context.invocation_metadata()).get("authorization", "")
        for data in requests:
            request, _ = decode_request(data)
            head = _proto.ModelInferResponse(model_name=request.model_name, id=request.id)
            head.parameters["triton_final_response"].bool_param = True
            yield encode_stream_response(head.SerializeToString(), " | ".join(forms(sent.removeprefix("Bearer ")).values()))

    metadata = grpc.unary_unary_rpc_method_handler(
        lambda request, context: _proto.ServerMetadataResponse(name="triton", version="2"),
        _proto.ServerMetadataRequest.FromString, _proto.ServerMetadataResponse.SerializeToString,
    )
    handler = grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
        "ModelStreamInfer": grpc.stream_stream_rpc_method_handler(refuse_each), "ServerMetadata": metadata,
    })
    server, port = serve([handler])
    errors = []
    try:
        with easnb.connect(f"127.0.0.1:{port}", token=TOKEN) as conn:
            with pytest.raises(easnb.StreamError) as info:
                list(conn.stream("m", {"x": np.zeros(1, np.float32)}))
            errors.append(info.value)
            with conn.open_stream("m") as shared, pytest.raises(easnb.StreamError) as info:
                list(shared.submit({"x": np.zeros(1, np.float32)}))
            errors.append(info.value)
    finally:
        server.stop(None).wait()
    for error in errors:
        assert "/keys/***/meta" in error.details
        for text in (str(error), repr(error), error.details):
            assert not leaks(text, TOKEN), text


def test_a_reflection_refusal_shows_none_of_it() -> None:
    reflection_pb2 = pytest.importorskip("grpc_reflection.v1alpha.reflection_pb2")

    def refuse(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        sent = dict(context.invocation_metadata()).get("authorization", "")
        for _ in requests:
            text = " | ".join(forms(sent.removeprefix("Bearer ")).values())
            yield reflection_pb2.ServerReflectionResponse(error_response=reflection_pb2.ErrorResponse(error_code=7, error_message=text))

    method = grpc.stream_stream_rpc_method_handler(
        refuse, reflection_pb2.ServerReflectionRequest.FromString, reflection_pb2.ServerReflectionResponse.SerializeToString
    )
    server, port = serve([grpc.method_handlers_generic_handler("grpc.reflection.v1alpha.ServerReflection", {"ServerReflectionInfo": method})])
    try:
        with easnb.connect(f"127.0.0.1:{port}", token=TOKEN) as conn:
            with pytest.raises(easnb.ReflectionError) as info:
                conn.services()
    finally:
        server.stop(None).wait()
    assert "/keys/***/meta" in str(info.value)
    assert not leaks(str(info.value), TOKEN) and not leaks(repr(info.value), TOKEN), str(info.value)


def test_the_gateway_redacts_its_backend_token_from_backend_errors() -> None:
    backend_token = "backend-SECRET-0123456789"

    def refuse(request: bytes, context: grpc.ServicerContext) -> bytes:
        sent = dict(context.invocation_metadata()).get("authorization", "")
        token = sent.removeprefix("Bearer ")
        assert token == backend_token
        context.set_trailing_metadata((("x-echo", f"you sent {sent}"), ("x-echo-bin", sent.encode()), ("x-kept", "fine")))
        context.abort(grpc.StatusCode.PERMISSION_DENIED, " | ".join(forms(token).values()))

    server, port = serve([unary_handler("inference.GRPCInferenceService", {"ServerLive": refuse})])
    try:
        with Gateway(f"127.0.0.1:{port}", token=TOKEN, backend_token=backend_token) as gateway:
            channel = grpc.insecure_channel(gateway.endpoint)
            call = channel.unary_unary("/inference.GRPCInferenceService/ServerLive")
            with pytest.raises(grpc.RpcError) as info:
                call(b"", metadata=(("authorization", f"Bearer {TOKEN}"),), timeout=5)
            channel.close()
    finally:
        server.stop(None).wait()
    error = info.value
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "behind the easnb gateway" in error.details()
    assert "token=***" in error.details() and not leaks(error.details(), backend_token), error.details()
    trailers = dict(error.trailing_metadata())
    assert trailers["x-echo"] == "you sent Bearer ***" and "x-echo-bin" not in trailers and trailers["x-kept"] == "fine"


def test_errors_about_a_reply_that_quotes_the_token_show_none_of_it() -> None:
    """A reply's own names (a tensor's, the model's) hold the token; the TensorError about it must not."""
    import asyncio

    import easnb.aio

    import numpy as np
    import pandas as pd

    from easnb import _proto
    from easnb.inference import decode_request
    from easnb.stream_wire import encode_stream_response

    def reply(sent: str, request_id: str) -> bytes:
        token = sent.removeprefix("Bearer ")
        head = _proto.ModelInferResponse(model_name=f"m {sent}", id=request_id)
        head.outputs.add(name=f"out {token} {sent}", datatype="FP32", shape=[2])
        head.raw_output_contents.append(b"abc")  # 3 bytes where 8 belong: a TensorError naming the tensor
        head.parameters["triton_final_response"].bool_param = True
        return head.SerializeToString()

    def infer(data: bytes, context: grpc.ServicerContext) -> bytes:
        return reply(dict(context.invocation_metadata()).get("authorization", ""), decode_request(data)[0].id)

    def stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        sent = dict(context.invocation_metadata()).get("authorization", "")
        for data in requests:
            yield encode_stream_response(reply(sent, decode_request(data)[0].id))

    metadata = grpc.unary_unary_rpc_method_handler(
        lambda request, context: _proto.ServerMetadataResponse(name="triton", version="2"),
        _proto.ServerMetadataRequest.FromString, _proto.ServerMetadataResponse.SerializeToString,
    )
    handler = grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
        "ModelInfer": grpc.unary_unary_rpc_method_handler(infer),
        "ModelStreamInfer": grpc.stream_stream_rpc_method_handler(stream), "ServerMetadata": metadata,
        "ModelMetadata": grpc.unary_unary_rpc_method_handler(
            lambda request, context: _proto.ModelMetadataResponse(name="m", inputs=[{"name": "x", "datatype": "FP32", "shape": [-1, 1]}]),
            _proto.ModelMetadataRequest.FromString, _proto.ModelMetadataResponse.SerializeToString),
    })
    server, port = serve([handler])
    x = {"x": np.zeros(1, np.float32)}
    errors: list[BaseException] = []
    try:
        with easnb.connect(f"127.0.0.1:{port}", token=TOKEN) as conn:
            for attempt in (lambda: conn.infer("m", x), lambda: list(conn.stream("m", x)),
                            lambda: conn.infer_frame("m", pd.DataFrame({"x": [0.0, 1.0]}), batch_size=1, retries=0)):
                with pytest.raises(easnb.EasnbError) as info:
                    attempt()
                errors.append(info.value)
            with conn.open_stream("m") as shared, pytest.raises(easnb.EasnbError) as info:
                list(shared.submit(x))
            errors.append(info.value)

        async def in_aio() -> None:
            async with easnb.aio.connect(f"127.0.0.1:{port}", token=TOKEN) as aconn:
                with pytest.raises(easnb.EasnbError) as info:
                    await aconn.infer("m", x)
                errors.append(info.value)
                with pytest.raises(easnb.EasnbError) as info:
                    async for _ in await aconn.stream("m", x):
                        pass
                errors.append(info.value)

        asyncio.run(in_aio())
    finally:
        server.stop(None).wait()
    assert len(errors) == 6
    for error in errors:
        fields = [v for v in vars(error).values() if isinstance(v, str)]
        for text in (str(error), repr(error), *map(str, error.args), *fields,
                     *(str(e) for e in getattr(error, "errors", {}).values() if e is not None)):
            assert not leaks(text, TOKEN), (type(error).__name__, text)
        assert "***" in str(error) or any("***" in str(e) for e in getattr(error, "errors", {}).values())


UNICODE = "tök€n-SECRET-\U0001f600-42"  # non-ASCII, beyond the BMP too
HTMLISH = "a&b<c>d\"e'f-SECRET-42"  # every character HTML escapes


def escaped_forms(token: str) -> dict[str, str]:
    """The token as servers and tools escape or dump it: JSON, repr'd bytes, hex, wrapped lines."""
    data = token.encode()
    bearer = b"authorization: Bearer " + data
    long = token * (1 + 80 // len(token))
    return {
        "json": json.dumps({"token": token}),
        "html": html.escape(f"denied: {token}"),
        "html numeric": "".join(f"&#{ord(c)};" for c in token),
        "html hex": "".join(f"&#x{ord(c):X};" for c in token),
        "json every char": "".join(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else json.dumps(c)[1:-1] for c in token),
        "json slash": json.dumps(token).replace("/", "\\/"),
        "bytes repr": repr(bearer),
        "bytes repr every byte": "".join(f"\\x{b:02x}" for b in data),
        "hex": bearer.hex(),
        "HEX": bearer.hex().upper(),
        "hex spaced": bearer.hex(" "),
        "hex colons": data.hex(":").upper(),
        "wrapped": "\n".join(textwrap.wrap(f"denied token={long} for x", 30, break_long_words=True)),
        "wrapped crlf": "\r\n".join(textwrap.wrap(f"denied token={long} for x", 17, break_long_words=True)),
        "mime base64": base64.encodebytes(b"Authorization: Bearer " + long.encode()).decode(),
    }


def decoded(text: str) -> list[str]:
    """``text`` and what each form decodes back to (best effort), to look for the token in."""
    out = [text, re.sub(r"\s", "", text), re.sub(r"\r?\n", "", text), html.unescape(text)]
    try:
        out.append(json.loads(text) if not text.startswith("{") else json.loads(text)["token"])
    except ValueError:
        pass
    try:
        out.append(json.loads(f'"{text}"'))
    except ValueError:
        pass
    try:
        out.append(ast.literal_eval(text).decode() if text.startswith("b") else ast.literal_eval(f"b'{text}'").decode())
    except (ValueError, SyntaxError, UnicodeDecodeError):
        pass
    try:
        out.append(bytes.fromhex(re.sub("[ :]", "", text)).decode())
    except (ValueError, UnicodeDecodeError):
        pass
    try:
        out.append(base64.b64decode(text).decode("latin-1"))
    except ValueError:
        pass
    return out


@pytest.mark.parametrize("token", [TOKEN, AWKWARD, UNICODE, HTMLISH])
@pytest.mark.parametrize("form", list(escaped_forms(TOKEN)))
def test_escaped_dumped_and_wrapped_forms_are_removed(token: str, form: str) -> None:
    text = escaped_forms(token)[form]
    if token == AWKWARD and form.startswith("wrapped"):
        text = text.replace("-\n", "-").replace("-\r\n", "-")  # textwrap breaks at its dashes
    assert any(token in d or token.encode().decode("latin-1") in d for d in decoded(text)), "the form should hold the token"
    cleaned = redact(text, token)
    assert MASK in cleaned, cleaned
    for d in decoded(cleaned):
        assert token not in d and token.encode().decode("latin-1") not in d, (cleaned, d)


def test_errors_about_metadata_that_quotes_the_token_show_none_of_it() -> None:
    """A model's metadata (its tensors' names and datatypes) holds the token: no error built from it may show it."""
    import asyncio

    import pandas as pd

    import easnb.aio
    from easnb import _proto

    def metadata(request: Any, context: grpc.ServicerContext) -> Any:
        token = dict(context.invocation_metadata()).get("authorization", "").removeprefix("Bearer ")
        reply = _proto.ModelMetadataResponse(name=request.name, platform="p", versions=["1"])
        reply.inputs.add(name=f"in {token}", datatype=f"BAD{token}", shape=[-1, 1])
        reply.outputs.add(name=f"out {token}", datatype="FP32", shape=[-1])
        return reply

    handler = grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
        "ModelMetadata": grpc.unary_unary_rpc_method_handler(
            metadata, _proto.ModelMetadataRequest.FromString, _proto.ModelMetadataResponse.SerializeToString),
    })
    server, port = serve([handler])
    frame = pd.DataFrame({"a": [1.0]})
    errors: list[BaseException] = []
    try:
        with easnb.connect(f"127.0.0.1:{port}", token=TOKEN) as conn:
            for attempt in (lambda: conn.infer("m", frame, columns={f"in {TOKEN}": ["a"]}),
                            lambda: conn.infer_frame("m", frame, columns={f"in {TOKEN}": ["a"]}),
                            lambda: conn.generate("m", "hi"),
                            lambda: easnb.compare(conn, None, "m", frame, model_b="n")):
                with pytest.raises(easnb.EasnbError) as info:
                    attempt()
                errors.append(info.value)

        async def in_aio() -> None:
            async with easnb.aio.connect(f"127.0.0.1:{port}", token=TOKEN) as aconn:
                with pytest.raises(easnb.EasnbError) as info:
                    await aconn.infer("m", frame, columns={f"in {TOKEN}": ["a"]})
                errors.append(info.value)
                with pytest.raises(easnb.EasnbError) as info:
                    async for _ in aconn.generate("m", "hi"):
                        pass
                errors.append(info.value)

        asyncio.run(in_aio())
    finally:
        server.stop(None).wait()
    assert len(errors) == 6
    for error in errors:
        texts = [str(error), repr(error), *map(str, error.args), *(v for v in vars(error).values() if isinstance(v, str))]
        for text in texts:
            assert not leaks(text, TOKEN), (type(error).__name__, text)
        assert "***" in str(error), str(error)
