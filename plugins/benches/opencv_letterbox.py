"""The original client's preprocessing, timed: OpenCV resize + copyMakeBorder + cvtColor + /255 +
transpose to NCHW. Prints milliseconds per frame (best of 5 × 5). Needs opencv-python-headless."""

import sys
import time

import cv2
import numpy as np

cv2.setNumThreads(1)
fmt, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
if fmt == "I420":
    frame = rng.integers(0, 255, (h * 3 // 2, w), dtype=np.uint8)
else:
    frame = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def letterbox():
    img = cv2.cvtColor(frame, cv2.COLOR_YUV2RGB_I420) if fmt == "I420" else frame
    r = min(640 / w, 640 / h)
    nw, nh = round(w * r), round(h * r)
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    dw, dh = (640 - nw) / 2, (640 - nh) / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    x = img.astype(np.float32) / 255.0
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


letterbox()
best = float("inf")
for _ in range(5):
    t = time.perf_counter()
    for _ in range(5):
        letterbox()
    best = min(best, (time.perf_counter() - t) / 5)
print(f"{best * 1000:.3f}")
