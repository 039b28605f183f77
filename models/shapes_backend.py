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

    def outputs(self, rects):
        if self.layout == "yolov8":
            return [pb_utils.Tensor("output0", shapes_common.yolov8_raw(rects))]
        if self.layout == "nms":
            return [pb_utils.Tensor("output0", shapes_common.nms_rows(rects))]
        num, boxes, scores, classes = shapes_common.efficient_nms(rects)
        return [
            pb_utils.Tensor("num_dets", num),
            pb_utils.Tensor("boxes", boxes),
            pb_utils.Tensor("scores", scores),
            pb_utils.Tensor("classes", classes),
        ]

    def execute(self, requests):
        responses = []
        for request in requests:
            image = pb_utils.get_input_tensor_by_name(request, "images").as_numpy()
            try:
                rects = shapes_common.find_rects(image)
            except ValueError as err:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(f"images: {err}")))
                continue
            delay_ms = shapes_common.requested_delay_ms(request, pb_utils)
            if not delay_ms and self.jitter_ms:
                delay_ms = int(np.random.randint(0, self.jitter_ms + 1))
            if delay_ms:
                time.sleep(delay_ms / 1000.0)
            responses.append(pb_utils.InferenceResponse(output_tensors=self.outputs(rects)))
        return responses
