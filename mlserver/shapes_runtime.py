"""The shapes_* ground-truth detector as an MLServer custom runtime: the same detector as the
Triton models (models/shapes_common.py), served by a second KServe v2 server. The output layout
comes from the model setting parameters.extra.layout (yolov8 | nms); every image of a batch is
searched on its own."""

import numpy as np
import shapes_common
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import MLServerError
from mlserver.types import InferenceRequest, InferenceResponse


class ShapesModel(MLModel):
    async def load(self) -> bool:
        extra = (self.settings.parameters.extra if self.settings.parameters else None) or {}
        self.layout = extra.get("layout", "")
        if self.layout not in ("yolov8", "nms"):
            raise MLServerError(f"parameters.extra.layout: '{self.layout}'; expected yolov8 or nms")
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inputs = [i for i in payload.inputs if i.name == "images"]
        if not inputs:
            raise MLServerError("expected an input named 'images'", status_code=400)
        images = NumpyCodec.decode_input(inputs[0]).astype(np.float32, copy=False)
        if images.ndim != 4 or images.shape[0] < 1 or images.shape[1] != 3:
            raise MLServerError(f"images: expected (B,3,H,W) RGB, got shape {images.shape}", status_code=400)
        per_image = [shapes_common.find_rects(images[i : i + 1]) for i in range(images.shape[0])]
        if self.layout == "yolov8":
            out = np.concatenate([shapes_common.yolov8_raw(r) for r in per_image])
        else:
            rows = [shapes_common.nms_rows(r) for r in per_image]
            out = np.zeros((len(rows), max(r.shape[1] for r in rows), 6), dtype=np.float32)
            for i, r in enumerate(rows):
                out[i, : r.shape[1]] = r[0]
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[NumpyCodec.encode_output("output0", out)],
        )
