#!/usr/bin/env python3
"""The reference tracker and scorer for dettrack's tests and benchmark (issue 27).

Runs Roboflow's `trackers` ByteTrack (PyPI `trackers`) on the detections a `detjsonsink` file
recorded, writes its tracks in the same schema, and scores track files against a ground truth
with `trackers.eval` (TrackEval's CLEAR MOT and identity metrics): an implementation of MOTA and
IDF1 independent of ours, which the Rust test compares with its own.

  track_reference.py track --detections D.jsonl --out REF.jsonl [--paper]
  track_reference.py score --truth T.jsonl NAME=TRACKS.jsonl ...
  track_reference.py time --detections D.jsonl [--repeat N]

`--paper` sets the ByteTrack paper's values (ours by default): high 0.5, new track 0.6, match
IoU 0.2 (cost 0.8); without it the package's own defaults. Lines are JSON on stdout.
"""
import argparse
import json
import sys
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def frames(path):
    """Per frame line (summary lines skipped): its detections, predicted boxes left out."""
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            v = json.loads(line)
            if "summary" in v:
                continue
            if "detections" not in v and "objects" not in v:
                sys.exit(f"{path} line {n}: no detections (include-detections=false?)")
            out.append(v)
    return out


def detections(v):
    return [d for d in v.get("detections", []) if not d.get("predicted")]


def make_tracker(paper):
    import trackers

    if paper:
        return trackers.ByteTrackTracker(
            lost_track_buffer=30,
            frame_rate=30.0,
            track_activation_threshold=0.6,
            high_conf_det_threshold=0.5,
            minimum_iou_threshold=0.2,
            minimum_consecutive_frames=2,
        )
    return trackers.ByteTrackTracker()


def sv_detections(dets):
    import supervision as sv

    if not dets:
        return sv.Detections.empty()
    return sv.Detections(
        xyxy=np.array([d["box"] for d in dets], dtype=np.float32),
        confidence=np.array([d.get("confidence", 1.0) for d in dets], dtype=np.float32),
        class_id=np.array([d.get("class_id", 0) for d in dets], dtype=int),
    )


def cmd_track(a):
    tracker = make_tracker(a.paper)
    with open(a.out, "w") as out:
        for v in frames(a.detections):
            got = tracker.update(sv_detections(detections(v)))
            dets = []
            for box, tid, cls in zip(got.xyxy, got.tracker_id, got.class_id):
                if tid is None or int(tid) < 0:
                    continue
                dets.append({"box": [float(x) for x in box], "track_id": int(tid), "class_id": int(cls)})
            out.write(json.dumps({"frame": v["frame"], "detections": dets}) + "\n")


def iou(a, b):
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def cmd_score(a):
    from trackers.eval import compute_clear_metrics, compute_identity_metrics

    truth = frames(a.truth)
    for spec in a.tracks:
        name, path = spec.split("=", 1)
        tracks = frames(path)
        if len(tracks) != len(truth):
            sys.exit(f"{path}: {len(tracks)} frames, the truth has {len(truth)}")
        gt_ids, tr_ids, sims = [], [], []
        for g, t in zip(truth, tracks):
            objs = g["objects"]
            # Tracks only: detections without a track id are not the tracker's output.
            dets = [d for d in t["detections"] if "track_id" in d]
            gt_ids.append(np.array([o["id"] for o in objs], dtype=int))
            tr_ids.append(np.array([d["track_id"] for d in dets], dtype=int))
            sims.append(iou([o["box"] for o in objs], [d["box"] for d in dets]))
        c = compute_clear_metrics(gt_ids, tr_ids, sims, threshold=0.5)
        i = compute_identity_metrics(gt_ids, tr_ids, sims, threshold=0.5)
        ids = {int(x) for arr in tr_ids for x in arr}
        print(json.dumps({
            "name": name, "mota": float(c["MOTA"]), "idf1": float(i["IDF1"]),
            "id_switches": int(c["IDSW"]), "misses": int(c["CLR_FN"]), "false_positives": int(c["CLR_FP"]),
            "matches": int(c["CLR_TP"]), "tracks": len(ids),
        }))


def cmd_time(a):
    fs = [sv_detections(detections(v)) for v in frames(a.detections)]
    best, tracked = None, 0
    for _ in range(a.repeat):
        tracker = make_tracker(True)
        outs = []
        t0 = time.perf_counter()
        for d in fs:
            outs.append(tracker.update(d))
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
        # The work done: boxes that left the tracker with an id.
        tracked = sum(int((o.tracker_id >= 0).sum()) for o in outs if o.tracker_id is not None)
    print(json.dumps({"frames": len(fs), "seconds": best, "ms_per_frame": 1000 * best / max(len(fs), 1), "tracked": tracked}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("track")
    t.add_argument("--detections", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--paper", action="store_true")
    s = sub.add_parser("score")
    s.add_argument("--truth", required=True)
    s.add_argument("tracks", nargs="+", help="NAME=TRACKS.jsonl")
    m = sub.add_parser("time")
    m.add_argument("--detections", required=True)
    m.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    {"track": cmd_track, "score": cmd_score, "time": cmd_time}[a.cmd](a)


if __name__ == "__main__":
    main()
