"""A small MLServer model for the interop tests: echoes inputs, and doubles FP32 ones."""

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class EchoModel(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        outputs = []
        for request_input in payload.inputs:
            if request_input.datatype == "BYTES":  # passed through as MLServer decoded it
                outputs.append(ResponseOutput(name=request_input.name, shape=request_input.shape,
                                              datatype="BYTES", data=request_input.data))
                continue
            array = NumpyCodec.decode_input(request_input)
            outputs.append(NumpyCodec.encode_output(request_input.name, array))
            if request_input.datatype == "FP32":
                outputs.append(NumpyCodec.encode_output(f"{request_input.name}_doubled", array * 2))
        return InferenceResponse(model_name=self.name, outputs=outputs)
