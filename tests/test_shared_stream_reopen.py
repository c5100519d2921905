"""A shared stream whose call a status ended (a server restart, a proxy's GOAWAY) carries on with the next submit."""

from __future__ import annotations

import grpc
import pytest

import easnb

from .test_shared_stream_attack import Scripted, scripted  # noqa: F401 - the fixture
from .test_streaming_hostile import INPUTS

pytestmark = pytest.mark.timeout(60)


def test_the_submit_after_a_call_ended_by_a_status_opens_another(scripted: Scripted) -> None:  # noqa: F811
    with easnb.connect(scripted.endpoint, timeout=None) as conn, conn.open_stream("m", flavour="triton") as shared:
        first = shared.submit(INPUTS, request_id="a")
        scripted.wait_seen(1)
        scripted.abort(grpc.StatusCode.UNAVAILABLE, "server restarting")
        with pytest.raises(easnb.UnavailableError, match="server restarting") as caught:
            first.collect()
        assert caught.value.request_id == "a"
        again = shared.submit(INPUTS, request_id="a")  # was: the first call's UnavailableError, on every submit after
        assert scripted.wait_seen(1) == ["a"]
        scripted.send("a", b"back", final=True)
        assert [r["text_output"][0] for r in again] == [b"back"]
        then = shared.submit(INPUTS)
        scripted.wait_seen(1)
        scripted.send(then.request_id, b"more", final=True)
        assert [r["text_output"][0] for r in then] == [b"more"]
