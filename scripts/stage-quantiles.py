#!/usr/bin/env python3
"""p50 and p95 of each camera's stage histograms (triton_video_camera_stage_seconds and
triton_video_camera_inference_latency_seconds) in a triton-video metrics text, read from a file or
from http://HOST:PORT/metrics. A quantile is interpolated linearly inside its bucket, as
Prometheus's histogram_quantile does.

Usage: stage-quantiles.py METRICS_FILE_OR_URL [--camera NAME]
       stage-quantiles.py --self-test
"""

import re
import sys
import urllib.request
from collections import defaultdict

LINE = re.compile(r'^(triton_video_camera_(?:stage_seconds|inference_latency_seconds))_bucket\{(.*)\} (\S+)$')
LABEL = re.compile(r'(\w+)="([^"]*)"')


def buckets(text):
    """{(camera, stage): [(le, cumulative count)]} from the bucket lines."""
    out = defaultdict(list)
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        labels = dict(LABEL.findall(m.group(2)))
        stage = labels.get("stage", "inference (round trip)")
        le = float("inf") if labels["le"] == "+Inf" else float(labels["le"])
        out[(labels["camera"], stage)].append((le, float(m.group(3))))
    return {k: sorted(v) for k, v in out.items()}


def quantile(q, bs):
    """The q-quantile of a cumulative histogram [(le, count)], None when it is empty."""
    total = bs[-1][1]
    if total == 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le, n in bs:
        if n >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / (n - below) if n > below else le
        lower, below = le, n
    return lower


def self_test():
    # 10 observations: 4 in (0, 1], 4 in (1, 2], 2 in (2, 4].
    bs = [(1.0, 4.0), (2.0, 8.0), (4.0, 10.0), (float("inf"), 10.0)]
    assert quantile(0.5, bs) == 1.25, quantile(0.5, bs)
    assert quantile(0.95, bs) == 3.5, quantile(0.95, bs)
    assert quantile(0.5, [(1.0, 0.0), (float("inf"), 0.0)]) is None
    text = (
        'triton_video_camera_stage_seconds_bucket{camera="a",stage="overlay",le="0.001"} 1\n'
        'triton_video_camera_stage_seconds_bucket{camera="a",stage="overlay",le="+Inf"} 2\n'
        'triton_video_camera_inference_latency_seconds_bucket{camera="a",le="0.01"} 3\n'
    )
    got = buckets(text)
    assert got[("a", "overlay")] == [(0.001, 1.0), (float("inf"), 2.0)], got
    assert ("a", "inference (round trip)") in got, got
    print("stage-quantiles: self-test passed")


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return
    if not sys.argv[1:]:
        sys.exit(__doc__)
    src = sys.argv[1]
    camera = sys.argv[sys.argv.index("--camera") + 1] if "--camera" in sys.argv else None
    if src.startswith("http"):
        text = urllib.request.urlopen(src, timeout=10).read().decode()
    else:
        with open(src) as f:
            text = f.read()
    print("| camera | stage | frames | p50 ms | p95 ms |")
    print("| --- | --- | --- | --- | --- |")
    for (cam, stage), bs in buckets(text).items():
        if camera and cam != camera:
            continue
        p50, p95 = quantile(0.5, bs), quantile(0.95, bs)
        if p50 is None:
            continue
        print(f"| {cam} | {stage} | {int(bs[-1][1])} | {p50 * 1000:.1f} | {p95 * 1000:.1f} |")


if __name__ == "__main__":
    main()
