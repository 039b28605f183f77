"""shapes_yolov8_u8: the shared shapes backend (models/shapes_backend.py); layout from config.pbtxt."""

import os
import sys

# models/shapes_*.py sit at the repository root, two levels up; keep __pycache__ out of it.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from shapes_backend import TritonPythonModel  # noqa: E402,F401
