"""The original client's preprocessing, timed: OpenCV cvtColor + resize(INTER_LINEAR) +
copyMakeBorder, then /255 in the tensor's dtype and a transpose to NCHW. One thread. Prints
milliseconds per frame (best of 5 × 5). Needs opencv-python-headless.

usage: opencv_letterbox.py FORMAT WIDTH HEIGHT [DTYPE]   (FORMAT: I420 NV12 RGB BGR RGBx;
DTYPE: FP32 (default), FP16, UINT8 — UINT8 keeps raw pixels, as tritonletterbox does)"""

import os
import sys
import time

# One thread for everything: numpy's OpenBLAS would otherwise start a spinning thread per core
# (seen taking a core of this 2-core machine while the baseline ran), and OpenCV its own pool.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)
fmt, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
dtype = sys.argv[4] if len(sys.argv) > 4 else "FP32"
rng = np.random.default_rng(0)
if fmt in ("I420", "NV12"):
    frame = rng.integers(0, 255, (h * 3 // 2, w), dtype=np.uint8)
else:
    frame = rng.integers(0, 255, (h, w, 4 if fmt == "RGBx" else 3), dtype=np.uint8)
to_rgb = {
    "I420": cv2.COLOR_YUV2RGB_I420,
    "NV12": cv2.COLOR_YUV2RGB_NV12,
    "BGR": cv2.COLOR_BGR2RGB,
    "RGBx": cv2.COLOR_RGBA2RGB,
}.get(fmt)


def letterbox():
    img = cv2.cvtColor(frame, to_rgb) if to_rgb is not None else frame
    r = min(640 / w, 640 / h)
    nw, nh = round(w * r), round(h * r)
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    dw, dh = (640 - nw) / 2, (640 - nh) / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    img = cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    if dtype == "UINT8":
        x = img
    else:
        x = img.astype(np.float32) / 255.0
        if dtype == "FP16":
            x = x.astype(np.float16)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


letterbox()
best = float("inf")
for _ in range(5):
    t = time.perf_counter()
    for _ in range(5):
        letterbox()
    best = min(best, (time.perf_counter() - t) / 5)
print(f"{best * 1000:.3f}")
