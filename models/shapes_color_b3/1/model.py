"""shapes_color_b3: the shared colour classifier (models/color_backend.py); batch limit from config.pbtxt."""

import os
import sys

# models/*.py sit at the repository root, two levels up; keep __pycache__ out of it.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from color_backend import TritonPythonModel  # noqa: E402,F401
