"""onnx: runs models/onnx/1/model.onnx (or the onnx_path parameter) with onnxruntime on the CPU."""

import json
import os

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        params = json.loads(args["model_config"]).get("parameters", {})
        name = params.get("onnx_path", {}).get("string_value", "model.onnx")
        here = os.path.dirname(os.path.abspath(__file__))
        self.path = name if os.path.isabs(name) else os.path.join(here, name)
        self.session = None
        self.problem = None
        if not os.path.isfile(self.path):
            self.problem = f"no ONNX file at {self.path}; export your model (e.g. yolo export format=onnx) and put it there"
            return
        try:
            import onnxruntime as ort  # noqa: E402  (installed by scripts/triton.sh venv)

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            self.session = ort.InferenceSession(self.path, opts, providers=["CPUExecutionProvider"])
            self.input_name = self.session.get_inputs()[0].name
        except Exception as err:  # a broken file must not take the server down
            self.problem = f"cannot load {self.path}: {err}"

    def execute(self, requests):
        responses = []
        for request in requests:
            if self.session is None:
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(self.problem)))
                continue
            image = pb_utils.get_input_tensor_by_name(request, "images").as_numpy()
            out = self.session.run(None, {self.input_name: image})[0].astype("float32")
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("output0", out)]))
        return responses
