"""A streaming MLServer model for the interop tests: vLLM-shaped text, one word per response.

``text_input`` and an optional ``sampling_parameters`` JSON (``max_tokens``, ``delay_ms``) give
``text_output`` (marked ``content_type: str``) and ``finish_reason``. A prompt containing ``fail``
fails after two tokens; a cancelled request is written to ``cancelled.log`` beside this file.
"""

import asyncio
import json
from pathlib import Path

from mlserver import MLModel
from mlserver.codecs import StringCodec
from mlserver.types import InferenceResponse

CANCELLED = Path(__file__).with_name("cancelled.log")


class GenModel(MLModel):
    async def load(self) -> bool:
        return True

    async def predict_stream(self, payloads):
        payload = await payloads.__anext__()
        values = {i.name: StringCodec.decode_input(i)[0] for i in payload.inputs}
        prompt = values["text_input"]
        sampling = json.loads(values.get("sampling_parameters") or "{}")
        words = f" You said: {' '.join(prompt.split())}.".split(" ")[1:]
        tokens = [" " + w for w in words][: int(sampling.get("max_tokens", 16))]
        try:
            for i, token in enumerate(tokens):
                if "fail" in prompt and i == 2:
                    raise ValueError("gen failed on purpose after 2 tokens (the prompt says 'fail')")
                await asyncio.sleep(float(sampling.get("delay_ms", 0)) / 1000)
                finish = ("stop" if len(tokens) == len(words) else "length") if i == len(tokens) - 1 else ""
                yield InferenceResponse(model_name=self.name, id=payload.id, outputs=[
                    StringCodec.encode_output("text_output", [token]),
                    StringCodec.encode_output("finish_reason", [finish]),
                ])
        except (asyncio.CancelledError, GeneratorExit):
            with CANCELLED.open("a") as log:
                log.write(f"{payload.id}\n")
            raise
