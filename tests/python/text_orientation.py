"""A drawn scene and an independent reference for the real second stage (`text_orientation`,
PaddleOCR's text direction classifier shipped by PyPI rapidocr-onnxruntime).

  .venv/bin/python tests/python/text_orientation.py OUT_DIR [--frames 3]

Writes into OUT_DIR:
- frames.rgb: the frames, raw RGB 640x360 one after another: eight light text panels of 240x60
  (4:1, the model's 192x48), each with a word drawn by OpenCV, upright or turned by 180 degrees;
- boxes.jsonl: the panels as detjsonsink lines (what `detjsonreplay` attaches, as a detector would);
- truth.jsonl: per frame the drawn direction of each panel, "0" or "180" (the model's labels);
- reference.jsonl: per frame and panel what onnxruntime answers on OpenCV's crop of the panel
  (INTER_LINEAR to 192x48, (x/255 - 0.5)/0.5, NCHW), {"label", "confidence"}: the model's answer
  without Triton and without gst-triton. Shares no code with gst-triton.
"""

import argparse
import importlib.util
import json
import os

import cv2
import numpy as np
import onnxruntime as ort

W, H = 640, 360
PANEL_W, PANEL_H = 240, 60
LABELS = ["0", "180"]
# Words the model reads both ways round with a clear margin (short all-capital words such as
# "EXIT" look alike either way up, and it hesitates on them).
WORDS = ["Hello", "Platform 9", "camera", "GATE 12", "Stop", "Queue", "tickets", "Way out"]


def onnx_file():
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None:
        raise SystemExit("text_orientation: rapidocr-onnxruntime is not installed (scripts/setup.sh)")
    return os.path.join(os.path.dirname(spec.origin), "models", "ch_ppocr_mobile_v2.0_cls_infer.onnx")


def panels():
    """The eight panels' boxes [x1, y1, x2, y2]: two columns, four rows."""
    return [[x, y, x + PANEL_W, y + PANEL_H] for y in (20, 105, 190, 275) for x in (40, 360)]


def draw(frame_no):
    """One frame and the direction of each panel on it."""
    img = np.full((H, W, 3), 90, np.uint8)
    directions = []
    for i, (x1, y1, x2, y2) in enumerate(panels()):
        word = WORDS[(i + frame_no) % len(WORDS)]
        panel = np.full((PANEL_H, PANEL_W, 3), 235, np.uint8)
        scale = 1.2 if len(word) < 7 else 0.95
        cv2.putText(panel, word, (10, 44), cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 2, cv2.LINE_AA)
        flipped = (2 * i + frame_no) % 3 == 1
        if flipped:
            panel = panel[::-1, ::-1]
        img[y1:y2, x1:x2] = panel
        directions.append(LABELS[1] if flipped else LABELS[0])
    return img, directions


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--frames", type=int, default=3)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    session = ort.InferenceSession(onnx_file(), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    with open(os.path.join(args.out, "frames.rgb"), "wb") as raw, open(
        os.path.join(args.out, "boxes.jsonl"), "w"
    ) as boxes, open(os.path.join(args.out, "truth.jsonl"), "w") as truth, open(
        os.path.join(args.out, "reference.jsonl"), "w"
    ) as ref:
        for k in range(args.frames):
            img, directions = draw(k)
            raw.write(img.tobytes())
            dets = [{"box": b, "class_id": 0, "label": "text", "confidence": 1.0} for b in panels()]
            line = {"frame": k, "width": W, "height": H, "status": "ok", "model": "drawn", "detections": dets}
            boxes.write(json.dumps(line) + "\n")
            truth.write(json.dumps({"frame": k, "directions": directions}) + "\n")
            crops = []
            for x1, y1, x2, y2 in panels():
                crop = cv2.resize(img[y1:y2, x1:x2], (192, 48), interpolation=cv2.INTER_LINEAR)
                crops.append(((crop.astype(np.float32) / 255.0 - 0.5) / 0.5).transpose(2, 0, 1))
            probs = session.run(None, {name: np.stack(crops)})[0]
            answers = [{"label": LABELS[int(np.argmax(p))], "confidence": float(np.max(p))} for p in probs]
            ref.write(json.dumps({"frame": k, "answers": answers}) + "\n")


if __name__ == "__main__":
    main()
