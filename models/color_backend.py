"""The colour classifier of shapes_color and shapes_color_b3: the colour of the shape in each crop
of a batch (models/shapes_common.py, colour_logits), as logits over the shapes' colour names. The
models differ only in their config.pbtxt (the batch limit)."""

import numpy as np
import shapes_common
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            images = pb_utils.get_input_tensor_by_name(request, "images").as_numpy()
            if images.ndim != 4 or images.shape[1] != 3:
                err = pb_utils.TritonError(f"images: expected (B,3,H,W) RGB, got shape {images.shape}")
                responses.append(pb_utils.InferenceResponse(error=err))
                continue
            logits = np.stack([shapes_common.colour_logits(images[i]) for i in range(images.shape[0])])
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("logits", logits)]))
        return responses
