"""The ONNX side of the `onnx` and `yolov8_person` models, importable without Triton (unit tests in
test_onnx_common.py): where the file is, the class names an export stores in its metadata, and
making a batch-1 export take a whole batch in one run."""

import ast
import importlib.util
import os

import numpy as np

# The output that names the classes (BYTES, one element per class, in id order).
LABELS_OUTPUT = "class_names"


def resolve_path(params, version_dir):
    """The ONNX file named by the model's config parameters.

    `onnx_package` = "pkg/sub/dir/file.onnx": a file inside the installed Python package `pkg`
    (found with importlib, so no absolute path is written anywhere); `onnx_path`: a file, relative
    to the model's version directory. Returns (path, problem): problem is a message for the user
    when the file is not there."""
    pkg_file = params.get("onnx_package", {}).get("string_value", "")
    if pkg_file:
        package, _, rest = pkg_file.partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            return None, (
                f"parameter onnx_package: the Python package '{package}' is not installed in the Triton venv "
                "(scripts/setup.sh installs it)"
            )
        path = os.path.join(os.path.dirname(spec.origin), rest)
    else:
        name = params.get("onnx_path", {}).get("string_value", "model.onnx")
        path = name if os.path.isabs(name) else os.path.join(version_dir, name)
    if not os.path.isfile(path):
        return path, f"no ONNX file at {path}; export your model (e.g. yolo export format=onnx) and put it there"
    return path, None


def class_names(metadata):
    """Class names from an export's metadata (Ultralytics stores `names` as a Python dict literal
    "{0: 'person', 1: 'bicycle'}"; a JSON list or a comma-separated string also work), in id
    order, or None when it says nothing usable."""
    text = (metadata or {}).get("names", "").strip()
    if not text:
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = [n.strip() for n in text.split(",")]
    if isinstance(value, dict):
        try:
            ids = sorted(int(k) for k in value)
        except (TypeError, ValueError):
            return None
        if ids != list(range(len(ids))):
            return None
        value = [value[k] if k in value else value[str(k)] for k in ids]
    if not isinstance(value, (list, tuple)) or not value:
        return None
    names = [str(v).strip() for v in value]
    # The names travel comma-separated in the config parameter class_names.
    if any(not n or "," in n for n in names):
        return None
    return names


def batchable(model):
    """Makes an ONNX ModelProto with a fixed batch of 1 accept any batch, in place: the first
    dimension of inputs and outputs becomes symbolic and every Reshape whose target shape starts
    with a literal 1 copies the batch instead (0). Returns True when it changed the graph (the
    caller checks the result against single runs before trusting it)."""
    from onnx import numpy_helper

    changed = False
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == 1:
            dims[0].dim_param = "batch"
            changed = True
    if not changed:
        return False
    inits = {t.name: t for t in model.graph.initializer}
    consts = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant"}
    for node in model.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        src = node.input[1]
        if src in inits:
            tensor = inits[src]
        elif src in consts and consts[src].attribute and consts[src].attribute[0].name == "value":
            tensor = consts[src].attribute[0].t
        else:
            continue
        shape = numpy_helper.to_array(tensor)
        if shape.ndim == 1 and shape.size and shape[0] == 1:
            shape = shape.copy()
            shape[0] = 0
            tensor.CopyFrom(numpy_helper.from_array(shape, tensor.name))
    # Stale inferred shapes would still say batch 1.
    del model.graph.value_info[:]
    return True


def split_runs(images, max_batch):
    """Index ranges of `images` (a list of (B, C, H, W) arrays) that may run together: consecutive,
    same shape, at most max_batch images."""
    runs, start, count = [], 0, 0
    for i, img in enumerate(images):
        if i > start and (img.shape[1:] != images[start].shape[1:] or count + img.shape[0] > max_batch):
            runs.append((start, i))
            start, count = i, 0
        count += img.shape[0]
    if images:
        runs.append((start, len(images)))
    return runs


def as_float(images):
    """A UINT8 input (raw pixels 0..255, as `tritonletterbox dtype=auto` sends to a model that
    declares TYPE_UINT8) normalised to the float32 0..1 the export takes; float input unchanged."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images


def run_batched(run, images, max_batch):
    """Runs `run` (one (N, C, H, W) array -> one (N, ...) array) over every request's images, as
    few runs as possible; returns one output per request."""
    outs = [None] * len(images)
    for a, b in split_runs(images, max_batch):
        stacked = np.concatenate(images[a:b]) if b - a > 1 else images[a]
        result = run(stacked)
        at = 0
        for i in range(a, b):
            n = images[i].shape[0]
            outs[i] = result[at : at + n]
            at += n
    return outs
