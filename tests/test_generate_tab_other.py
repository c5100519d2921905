"""The Generate tab: "Other" takes sampling settings only (what runs is what History replays and copies), a
stopped generation is kept as stopped, and a slow server does not hold the workbench while it looks for generators."""

from __future__ import annotations

from typing import Any

import pytest

import easnb
from easnb.generate_tab import GenerateInspector


@pytest.mark.parametrize("other", ['{"prompt": "x"}', '{"model": "iris"}', '{"version": "1"}', '{"timeout": 5}',
                                   '{"headers": {"x-a": "1"}}', '{"first_response_timeout": 1}'])
def test_other_refuses_what_is_not_a_sampling_setting(conn: easnb.Connection, other: str) -> None:
    tab = GenerateInspector(conn, "textgen")
    tab.prompt.value = "hi"
    tab.extra.value = other
    tab.generate(wait=True)
    shown = tab.output.value
    assert "TypeError" not in shown and "not a sampling setting" in shown, shown  # was: a raw TypeError, or run
    assert len(tab.history) == 0  # and recorded with it in sampling_parameters, replay then failing on version=


def test_other_settings_run_replay_and_copy_alike(conn: easnb.Connection) -> None:
    tab = GenerateInspector(conn, "textgen")
    tab.prompt.value = "one two three"
    tab.extra.value = '{"max_tokens": 2, "top_k": 4}'
    tab.generate(wait=True)
    assert tab.output.value == "" and tab.generation is not None and tab.generation.text == " You said:"
    again = tab.history.replay(0, conn)
    assert again.text == " You said:" and tab.history[1].status == "OK"
    assert '"top_k": 4' in tab.history.code(0, "easnb") and "top_k" in tab.history.code(0, "tritonclient")


def test_a_server_slow_to_give_metadata_does_not_hold_the_workbench() -> None:
    """The workbench asks up to 24 models' metadata looking for text generators: one budget bounds them all."""
    import time
    from concurrent import futures

    import grpc

    from easnb import _proto
    from easnb.workbench import Workbench

    def answer(reply: Any) -> Any:
        return grpc.unary_unary_rpc_method_handler(lambda data, context: reply.SerializeToString())

    def silent(data: bytes, context: grpc.ServicerContext) -> bytes:
        while context.is_active():
            time.sleep(0.05)
        return b""

    handler = grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
        "ServerLive": answer(_proto.ServerLiveResponse(live=True)), "ServerReady": answer(_proto.ServerReadyResponse(ready=True)),
        "ServerMetadata": answer(_proto.ServerMetadataResponse(name="triton", version="2")),
        "ModelMetadata": grpc.unary_unary_rpc_method_handler(silent)})
    server = grpc.server(futures.ThreadPoolExecutor(8), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with easnb.connect(f"127.0.0.1:{port}", timeout=1.0) as conn:
            started = time.monotonic()
            bench = Workbench(conn, models=[f"m{i}" for i in range(30)])
            took = time.monotonic() - started
    finally:
        server.stop(None)
    assert bench.generate is None and "built" in bench.status.value
    assert took < 12  # was: 24 models times the timeout, 24 s here and two minutes at the default 5 s
