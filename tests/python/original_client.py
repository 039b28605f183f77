"""The original client's design, written here for the whole-job benchmark (tests/benches/job.rs):
what a camera costs when run as a Python script, stage by stage as the seed described it. OpenCV
decodes the video; each frame is letterboxed (one scale, INTER_LINEAR, grey 114 padding split
evenly) into a 640x640 FP32 NCHW tensor 0..1; sent over the proxy's Chat stream (grpcio,
x-domino-api-key, one stream, one frame at a time, base64 Acks); the output is base64-decoded with numpy,
YOLOv8-decoded (confidence 0.25, OpenCV NMS at IoU 0.45), mapped back to the frame, drawn with
OpenCV, written with the `mp4v` VideoWriter, and counted into a JSONL line per frame.

  .venv/bin/python tests/python/original_client.py --video IN --proxy HOST:PORT --key KEY \
      --model shapes_yolov8 --labels red,green,blue,yellow --out DIR [--frames N]

Prints one JSON line at the end: {"frames", "ok", "errors", "cpu_s"} (cpu_s: user + system
seconds of this process, stub generation and imports included).
"""

import argparse
import base64
import json
import os
import queue
import resource
import sys

import cv2
import numpy as np

sys.dont_write_bytecode = True
SIDE = 640


def letterbox(frame):
    h, w = frame.shape[:2]
    r = min(SIDE / w, SIDE / h)
    nw, nh = round(w * r), round(h * r)
    img = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    dw, dh = (SIDE - nw) / 2, (SIDE - nh) / 2
    top, left = round(dh - 0.1), round(dw - 0.1)
    img = cv2.copyMakeBorder(img, top, SIDE - nh - top, left, SIDE - nw - left, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    x = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), nw / w, nh / h, left, top


def decode(out, sx, sy, left, top, w, h):
    """YOLOv8 head [1, 4 + classes, anchors] -> [(class, score, x1, y1, x2, y2)] in frame pixels."""
    p = out[0].T
    scores = p[:, 4:]
    cls = scores.argmax(1)
    conf = scores[np.arange(len(cls)), cls]
    keep = conf >= 0.25
    p, cls, conf = p[keep], cls[keep], conf[keep]
    boxes = np.stack([p[:, 0] - p[:, 2] / 2, p[:, 1] - p[:, 3] / 2, p[:, 2], p[:, 3]], 1)
    dets = []
    for c in np.unique(cls):
        m = cls == c
        idx = cv2.dnn.NMSBoxes(boxes[m].tolist(), conf[m].tolist(), 0.25, 0.45)
        for i in np.array(idx).reshape(-1):
            x, y, bw, bh = boxes[m][i]
            x1, y1 = (x - left) / sx, (y - top) / sy
            x2, y2 = (x + bw - left) / sx, (y + bh - top) / sy
            dets.append((int(c), float(conf[m][i]), max(0, x1), max(0, y1), min(w, x2), min(h, y2)))
    return dets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--video", required=True)
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--model", default="shapes_yolov8")
    ap.add_argument("--labels", default="red,green,blue,yellow")
    ap.add_argument("--out", required=True)
    ap.add_argument("--frames", type=int, default=0)
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    from seed_client import generate_stubs

    generate_stubs(os.path.join(here, "..", "..", "proto", "proto"))
    import grpc
    import multimodal_pb2 as pb
    import multimodal_pb2_grpc as pb_grpc

    labels = args.labels.split(",")
    os.makedirs(args.out, exist_ok=True)
    cap = cv2.VideoCapture(args.video)
    if not cap.isOpened():
        raise SystemExit(f"cannot open {args.video}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    writer = cv2.VideoWriter(os.path.join(args.out, "annotated.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    note = json.dumps({
        "model": args.model,
        "inputs": [{"name": "images", "shape": [1, 3, SIDE, SIDE], "dtype": "FP32", "from": "image"}],
        "outputs": ["output0"],
    })
    opts = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    stub = pb_grpc.MultiModalStub(grpc.insecure_channel(args.proxy, options=opts))
    # One Chat stream for the whole video, one frame at a time: send, wait for its Ack.
    outbox = queue.Queue()

    def packets():
        while (p := outbox.get()) is not None:
            yield p

    acks = stub.Chat(packets(), metadata=[("x-domino-api-key", args.key)])
    frames = ok = errors = 0
    with open(os.path.join(args.out, "frame_counts.jsonl"), "w") as counts:
        while not args.frames or frames < args.frames:
            got, frame = cap.read()
            if not got:
                break
            tensor, sx, sy, left, top = letterbox(frame)
            p = pb.DataPacket()
            p.meta.correlation_id = f"cam-001:{frames}"
            p.meta.note = note
            p.image.data = tensor.tobytes()
            outbox.put(p)
            ack = next(acks)
            dets = []
            if ack.status_code == 0:
                out = json.loads(ack.message)["outputs"]["output0"]
                arr = np.frombuffer(base64.b64decode(out["b64"]), dtype=out["dtype"]).reshape(out["shape"])
                dets = decode(arr, sx, sy, left, top, w, h)
                ok += 1
            else:
                errors += 1
            per_class = {}
            for c, s, x1, y1, x2, y2 in dets:
                name = labels[c] if c < len(labels) else str(c)
                per_class[name] = per_class.get(name, 0) + 1
                cv2.rectangle(frame, (int(x1), int(y1)), (int(x2), int(y2)), (0, 255, 0), 2)
                cv2.putText(frame, f"{name} {s:.2f}", (int(x1), max(0, int(y1) - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 0), 2)
            writer.write(frame)
            counts.write(json.dumps({"frame": frames, "counts": per_class}) + "\n")
            frames += 1
    outbox.put(None)
    for _ in acks:
        pass
    writer.release()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"frames": frames, "ok": ok, "errors": errors, "cpu_s": ru.ru_utime + ru.ru_stime}))


if __name__ == "__main__":
    main()
