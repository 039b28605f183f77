"""shapes_jitter: finds solid coloured rectangles (see models/shapes_common.py)."""

import json
import os
import sys
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        # models/shapes_common.py sits at the repository root, two levels up.
        sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
        sys.dont_write_bytecode = True  # keep __pycache__ out of the model repository
        global shapes_common
        import shapes_common  # noqa: E402

        # Optional config parameter "jitter_ms": sleep a random 0..jitter_ms per request.
        params = json.loads(args["model_config"]).get("parameters", {})
        self.jitter_ms = int(params.get("jitter_ms", {}).get("string_value", "0"))

    def execute(self, requests):
        responses = []
        for request in requests:
            image = pb_utils.get_input_tensor_by_name(request, "images").as_numpy()
            try:
                rects = shapes_common.find_rects(image)
            except ValueError as err:
                responses.append(
                    pb_utils.InferenceResponse(error=pb_utils.TritonError(f"images: {err}"))
                )
                continue
            delay_ms = shapes_common.requested_delay_ms(request, pb_utils)
            if not delay_ms and self.jitter_ms:
                delay_ms = int(shapes_common.np.random.randint(0, self.jitter_ms + 1))
            if delay_ms:
                time.sleep(delay_ms / 1000.0)
            outs = [pb_utils.Tensor("output0", shapes_common.nms_rows(rects))]
            responses.append(pb_utils.InferenceResponse(output_tensors=outs))
        return responses
