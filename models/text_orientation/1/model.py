"""text_orientation: PaddleOCR's pretrained text direction classifier from PyPI
rapidocr-onnxruntime (onnx_package), run with onnxruntime on the CPU; the shared code is
models/onnx_backend.py."""

import os
import sys

# models/onnx_*.py sit at the repository root, two levels up; keep __pycache__ out of it.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from onnx_backend import make_model  # noqa: E402

TritonPythonModel = make_model(os.path.dirname(os.path.abspath(__file__)))
