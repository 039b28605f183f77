"""Unit tests of the shapes_* models' detector (numpy only; run with python -m unittest)."""

import os
import sys
import unittest

import numpy as np

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes_common as sc  # noqa: E402


def canvas(h, w, rects, bg=114 / 255):
    img = np.full((1, 3, h, w), bg, np.float32)
    for x1, y1, x2, y2, cls in rects:
        img[0, :, y1:y2, x1:x2] = sc.PALETTE[cls][:, None, None]
    return img


class ColourLogits(unittest.TestCase):
    def test_the_colour_that_fills_most_of_the_crop_wins(self):
        for cls in range(sc.NUM_CLASSES):
            other = (cls + 1) % sc.NUM_CLASSES
            # The object fills the middle, a neighbour's corner pokes in, grey padding around.
            img = canvas(64, 64, [(8, 16, 56, 48, cls), (0, 0, 6, 6, other)])[0]
            logits = sc.colour_logits(img)
            self.assertEqual(logits.shape, (sc.NUM_CLASSES,))
            self.assertEqual(int(np.argmax(logits)), cls, logits)
            self.assertAlmostEqual(float(logits[cls]), 10.0 * 48 * 32 / 64 / 64, places=5)
            raw = np.rint(img * 255).astype(np.uint8)
            np.testing.assert_allclose(sc.colour_logits(raw), logits, atol=1e-6)

    def test_a_crop_without_a_shape_scores_nothing_and_a_bad_shape_is_refused(self):
        self.assertFalse(sc.colour_logits(canvas(16, 16, [])[0]).any())
        with self.assertRaises(ValueError):
            sc.colour_logits(np.zeros((16, 16), np.float32))


class FindRects(unittest.TestCase):
    def test_exact_boxes_and_classes(self):
        rects = [(5, 7, 40, 30, 0), (100, 10, 120, 90, 1), (60, 60, 90, 62, 2), (0, 0, 3, 3, 3)]
        found = sc.find_rects(canvas(128, 160, rects))
        self.assertEqual(sorted(found), sorted(tuple(map(float, r[:4])) + (r[4],) for r in rects))

    def test_raw_uint8_pixels_give_the_same_boxes(self):
        rects = [(5, 7, 40, 30, 0), (100, 10, 120, 90, 1), (60, 60, 90, 62, 3)]
        img = canvas(128, 160, rects)
        raw = np.rint(img * 255).astype(np.uint8)
        self.assertEqual(raw.dtype, np.uint8)
        self.assertEqual(sc.find_rects(raw), sc.find_rects(img))
        self.assertEqual(len(sc.find_rects(raw)), 3)

    def test_several_of_one_colour_and_edges(self):
        rects = [(0, 0, 10, 10, 2), (150, 118, 160, 128, 2), (20, 0, 30, 128, 2)]
        found = sc.find_rects(canvas(128, 160, rects))
        # Three separate objects of one colour, touching the image's edges and corners.
        self.assertEqual(sorted(found), sorted(tuple(map(float, r[:4])) + (r[4],) for r in rects))

    def test_blended_edges_within_half_a_pixel(self):
        img = canvas(64, 64, [(10, 10, 30, 20, 0)])
        # a 40 % blend column right of the box and a 60 % blend row under it
        img[0, :, 10:20, 30] = 0.4 * sc.PALETTE[0][:, None] + 0.6 * (114 / 255)
        img[0, :, 20, 10:30] = 0.6 * sc.PALETTE[0][:, None] + 0.4 * (114 / 255)
        (x1, y1, x2, y2, cls), = sc.find_rects(img)
        self.assertEqual((x1, y1, x2, y2, cls), (10.0, 10.0, 30.0, 21.0, 0))

    def test_empty_and_noise(self):
        self.assertEqual(sc.find_rects(canvas(32, 32, [])), [])
        img = canvas(32, 32, [])
        img[0, :, 5, 5] = sc.PALETTE[1]  # a single pixel is not an object
        self.assertEqual(sc.find_rects(img), [])

    def test_bad_shape(self):
        with self.assertRaises(ValueError):
            sc.find_rects(np.zeros((1, 4, 8, 8), np.float32))


class Layouts(unittest.TestCase):
    rects = [(10.0, 20.0, 50.0, 60.0, 1), (100.0, 100.0, 120.0, 140.0, 3)]

    def test_yolov8_best_candidate_is_exact(self):
        out = sc.yolov8_raw(self.rects)
        self.assertEqual(out.shape, (1, 8, 8400))
        for x1, y1, x2, y2, cls in self.rects:
            scores = out[0, 4 + cls]
            best = int(np.argmax(np.where(np.abs(out[0, 0] - (x1 + x2) / 2) < 5, scores, 0)))
            self.assertAlmostEqual(float(out[0, 0, best]), (x1 + x2) / 2)
            self.assertAlmostEqual(float(out[0, 2, best]), x2 - x1)
            # several candidates overlap the object: NMS is needed
            self.assertGreaterEqual(int(np.sum((scores > 0.25) & (np.abs(out[0, 0] - (x1 + x2) / 2) < 5))), 3)

    def test_nms_rows_and_efficient_nms(self):
        rows = sc.nms_rows(self.rects)
        self.assertEqual(rows.shape, (1, 2, 6))
        for row, (x1, y1, x2, y2, cls) in zip(rows[0], self.rects):
            self.assertEqual(list(row[:4]), [x1, y1, x2, y2])
            self.assertGreater(float(row[4]), 0.5)
            self.assertEqual(row[5], cls)
        num, boxes, scores, classes = sc.efficient_nms(self.rects)
        self.assertEqual(int(num[0]), 2)
        self.assertEqual(boxes.shape, (1, 100, 4))
        self.assertEqual(boxes[0, :2].tolist(), [list(r[:4]) for r in self.rects])
        self.assertTrue(all(float(s) > 0.5 for s in scores[0, :2]))
        self.assertEqual(list(classes[0, :2]), [1, 3])
        # The unused slots are zero.
        self.assertFalse(boxes[0, 2:].any() or scores[0, 2:].any() or classes[0, 2:].any())


if __name__ == "__main__":
    unittest.main()
