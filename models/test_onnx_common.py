"""Unit tests of onnx_common (the ONNX side of the `onnx` and `yolov8_person` models); they build
their own small ONNX graphs, so they need onnx + onnxruntime (the Triton venv) but no Triton."""

import os
import sys
import tempfile
import unittest

import numpy as np

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import onnx_common as oc  # noqa: E402


def batch1_graph():
    """images [1,3,4,4] -> Reshape to [1,3,16] (a literal 1, as exports write it) -> *2 ->
    output0 [1,3,16]."""
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([1, 3, 16], dtype=np.int64), "shape")
    two = numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")
    g = helper.make_graph(
        [helper.make_node("Reshape", ["images", "shape"], ["r"]), helper.make_node("Mul", ["r", "two"], ["output0"])],
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 3, 16])],
        [shape, two],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


class ClassNames(unittest.TestCase):
    def test_ultralytics_dict_literal_in_id_order(self):
        self.assertEqual(oc.class_names({"names": "{1: 'Fall', 0: 'Normal'}"}), ["Normal", "Fall"])

    def test_json_list_and_comma_separated(self):
        self.assertEqual(oc.class_names({"names": '["a", "b"]'}), ["a", "b"])
        self.assertEqual(oc.class_names({"names": "cat, dog"}), ["cat", "dog"])

    def test_nothing_usable_is_none(self):
        for meta in [None, {}, {"names": ""}, {"names": "{0: 'a', 2: 'c'}"}, {"names": "{0: 'a,b'}"}, {"names": "{}"}]:
            self.assertIsNone(oc.class_names(meta), meta)


class AsFloat(unittest.TestCase):
    def test_raw_pixels_are_normalised_and_floats_kept(self):
        raw = np.array([[[[0, 51, 255]]]], dtype=np.uint8)
        got = oc.as_float(raw)
        self.assertEqual(got.dtype, np.float32)
        np.testing.assert_allclose(got, [[[[0.0, 0.2, 1.0]]]], rtol=1e-6)
        floats = np.array([[[[0.5]]]], dtype=np.float32)
        self.assertIs(oc.as_float(floats), floats)


class ResolvePath(unittest.TestCase):
    def test_relative_absolute_and_missing(self):
        with tempfile.TemporaryDirectory() as d:
            open(os.path.join(d, "model.onnx"), "wb").close()
            self.assertEqual(oc.resolve_path({}, d), (os.path.join(d, "model.onnx"), None))
            path, problem = oc.resolve_path({"onnx_path": {"string_value": "other.onnx"}}, d)
            self.assertEqual(path, os.path.join(d, "other.onnx"))
            self.assertIn("no ONNX file at", problem)

    def test_package_file_and_missing_package(self):
        path, problem = oc.resolve_path({"onnx_package": {"string_value": "unittest/__init__.py"}}, "/x")
        self.assertIsNone(problem)
        self.assertTrue(path.endswith(os.path.join("unittest", "__init__.py")))
        _, problem = oc.resolve_path({"onnx_package": {"string_value": "no_such_pkg_xyz/m.onnx"}}, "/x")
        self.assertIn("'no_such_pkg_xyz' is not installed", problem)


class Batching(unittest.TestCase):
    def test_batch1_export_takes_a_batch_with_identical_answers(self):
        import onnxruntime as ort

        m = batch1_graph()
        single = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        self.assertTrue(oc.batchable(m))
        many = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        x = np.random.default_rng(1).random((3, 3, 4, 4), dtype=np.float32)
        both = many.run(None, {"images": x})[0]
        self.assertEqual(both.shape, (3, 3, 16))
        for i in range(3):
            np.testing.assert_array_equal(both[i : i + 1], single.run(None, {"images": x[i : i + 1]})[0])
        self.assertFalse(oc.batchable(m), "already batchable: nothing to change")

    def test_runs_group_same_shapes_up_to_the_limit(self):
        a, b = np.zeros((1, 3, 4, 4)), np.zeros((1, 3, 8, 8))
        self.assertEqual(oc.split_runs([a, a, b, b, b], 8), [(0, 2), (2, 5)])
        self.assertEqual(oc.split_runs([a, a, a], 2), [(0, 2), (2, 3)])
        self.assertEqual(oc.split_runs([], 8), [])

    def test_run_batched_answers_each_request_with_its_own_rows(self):
        calls = []

        def run(x):
            calls.append(x.shape[0])
            return x[:, :1, 0, 0] * 10

        imgs = [np.full((1, 3, 2, 2), i, dtype=np.float32) for i in range(3)] + [np.full((2, 3, 5, 5), 7, dtype=np.float32)]
        outs = oc.run_batched(run, imgs, 8)
        self.assertEqual(calls, [3, 2])
        self.assertEqual([o.tolist() for o in outs], [[[0.0]], [[10.0]], [[20.0]], [[70.0], [70.0]]])


if __name__ == "__main__":
    unittest.main()
