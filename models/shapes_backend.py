"""The Triton Python-backend model class shared by the shapes_* models. The output layout comes
from the config parameter "layout" (yolov8 | nms | effnms); "jitter_ms" adds a random delay per
request. The detector itself is in shapes_common.py (importable without Triton, for unit tests)."""

import json
import time

import numpy as np
import shapes_common
import triton_python_backend_utils as pb_utils


def _param(config, key, default):
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.layout = _param(config, "layout", "")
        if self.layout not in ("yolov8", "nms", "effnms"):
            raise ValueError(f"parameter layout: '{self.layout}'; expected yolov8, nms or effnms")
        self.jitter_ms = int(_param(config, "jitter_ms", "0"))

    def outputs(self, per_image):
        """The answer for one request: one entry of `per_image` (a list of rects) per image of its
        batch, stacked along the batch axis (nms rows padded with all-zero rows, score 0)."""
        if self.layout == "yolov8":
            return [pb_utils.Tensor("output0", np.concatenate([shapes_common.yolov8_raw(r) for r in per_image]))]
        if self.layout == "nms":
            rows = [shapes_common.nms_rows(r) for r in per_image]
            m = max(r.shape[1] for r in rows)
            padded = np.zeros((len(rows), m, 6), dtype=np.float32)
            for i, r in enumerate(rows):
                padded[i, : r.shape[1]] = r[0]
            return [pb_utils.Tensor("output0", padded)]
        parts = [shapes_common.efficient_nms(r) for r in per_image]
        return [
            pb_utils.Tensor("num_dets", np.stack([p[0] for p in parts])),  # (B, 1)
            pb_utils.Tensor("boxes", np.concatenate([p[1] for p in parts])),
            pb_utils.Tensor("scores", np.concatenate([p[2] for p in parts])),
            pb_utils.Tensor("classes", np.concatenate([p[3] for p in parts])),
        ]

    def execute(self, requests):
        # With dynamic batching Triton hands several requests at once; each may itself hold a
        # batch (B, 3, H, W). Every image is searched on its own (they may differ in size).
        responses = []
        for request in requests:
            images = pb_utils.get_input_tensor_by_name(request, "images").as_numpy()
            try:
                if images.ndim != 4 or images.shape[0] < 1:
                    raise ValueError(f"expected (B,3,H,W) RGB, got shape {images.shape}")
                per_image = [shapes_common.find_rects(images[i : i + 1]) for i in range(images.shape[0])]
            except ValueError as err:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"images: {err}")))
                continue
            delay_ms = shapes_common.requested_delay_ms(request, pb_utils)
            if not delay_ms and self.jitter_ms:
                delay_ms = int(np.random.randint(0, self.jitter_ms + 1))
            if delay_ms:
                time.sleep(delay_ms / 1000.0)
            responses.append(pb_utils.InferenceResponse(output_tensors=self.outputs(per_image)))
        return responses
