"""Writes a small ONNX graph that emits a known YOLOv8 raw output [1, 84, N]: the boxes given on
the command line (tensor pixels x1,y1,x2,y2,class) with score 0.9, plus a shifted duplicate at 0.6
so NMS has work to do. The output depends on the input (adds 0 * mean(images)), so the graph really
runs on what it is fed.

    python make_yolo_onnx.py OUT.onnx x1,y1,x2,y2,cls [...]"""

import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out_path, boxes = sys.argv[1], [tuple(float(v) for v in b.split(",")) for b in sys.argv[2:]]
n = 256  # more anchors than the 84 channels, as in real exports (the decoder takes the shorter axis as channels)
head = np.zeros((1, 84, n), np.float32)
for i, (x1, y1, x2, y2, cls) in enumerate(boxes):
    for k, (dx, score) in enumerate([(0.0, 0.9), (1.5, 0.6)]):
        a = 2 * i + k
        head[0, 0:4, a] = ((x1 + x2) / 2 + dx, (y1 + y2) / 2, x2 - x1, y2 - y1)
        head[0, 4 + int(cls), a] = score

const = numpy_helper.from_array(head, "head")
zero = numpy_helper.from_array(np.zeros((1,), np.float32), "zero")
nodes = [
    helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
    helper.make_node("Mul", ["m", "zero"], ["z"]),
    helper.make_node("Add", ["head", "z"], ["output0"]),
]
graph = helper.make_graph(
    nodes,
    "yolo_like",
    [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, None, None])],
    [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 84, n])],
    initializer=[const, zero],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, out_path)
