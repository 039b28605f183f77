"""Ground-truth "detector" shared by the shapes_* test models.

Finds solid, axis-aligned rectangles of a few pure colours in an NCHW float32
RGB image with values in 0..1 and reports them as boxes in tensor pixels
(x1, y1, x2, y2 with x2/y2 exclusive edges). Class id = index in PALETTE.
numpy only, so it runs inside Triton's Python backend stub and in plain tests.
"""

import numpy as np

CLASS_NAMES = ["red", "green", "blue", "yellow"]
PALETTE = np.array(
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]], dtype=np.float32
)
NUM_CLASSES = len(CLASS_NAMES)
# Colours a pixel is compared with: the palette, then backgrounds (letterbox
# grey, black, white). A pixel belongs to the nearest one, so a blended edge
# pixel counts as the object when it is at least half covered by it, and edges
# land within half a pixel of the truth whatever the background.
REFERENCES = np.concatenate(
    [PALETTE, np.array([[114 / 255] * 3, [0.0] * 3, [1.0] * 3], dtype=np.float32)]
)
# ...and no farther than this from it (per channel), so odd colours are ignored.
TOLERANCE = 0.5
MIN_SIDE = 2


def _grow(mask, y, x):
    """Bounding box (y0, x0, y1, x1), exclusive ends, of the blob holding (y, x)."""
    h, w = mask.shape
    y0, y1, x0, x1 = y, y + 1, x, x + 1
    changed = True
    while changed:
        changed = False
        lx, rx = max(x0 - 1, 0), min(x1 + 1, w)
        if y0 > 0 and mask[y0 - 1, lx:rx].any():
            y0 -= 1
            changed = True
        if y1 < h and mask[y1, lx:rx].any():
            y1 += 1
            changed = True
        ly, ry = max(y0 - 1, 0), min(y1 + 1, h)
        if x0 > 0 and mask[ly:ry, x0 - 1].any():
            x0 -= 1
            changed = True
        if x1 < w and mask[ly:ry, x1].any():
            x1 += 1
            changed = True
    return y0, x0, y1, x1


def colour_logits(image):
    """image: (3, H, W) float32 in 0..1 (or uint8 raw pixels). Logits over CLASS_NAMES: 10 x the
    fraction of the image's pixels nearest each palette colour (backgrounds and odd colours count
    for none), so the colour that fills most of a crop wins and a crop without any scores 0
    everywhere."""
    img = np.asarray(image)
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32, copy=False)
    if img.ndim != 3 or img.shape[0] != 3:
        raise ValueError(f"expected (3,H,W) RGB, got shape {img.shape}")
    pixels = img.reshape(3, -1).T
    dist = np.abs(pixels[:, None, :] - REFERENCES[None, :, :]).max(axis=2)
    nearest = dist.argmin(axis=1)
    close = dist.min(axis=1) <= TOLERANCE
    counts = np.bincount(nearest[close], minlength=len(REFERENCES))[:NUM_CLASSES]
    return (10.0 * counts / max(pixels.shape[0], 1)).astype(np.float32)


def find_rects(image):
    """image: array (1, 3, H, W) or (3, H, W), float32 in 0..1 or uint8 raw pixels (a UINT8
    input, normalised here as a model that takes raw pixels does). Returns a list of
    (x1, y1, x2, y2, class_id) sorted by class then position."""
    img = np.asarray(image)
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32, copy=False)
    if img.ndim == 4:
        if img.shape[0] != 1:
            raise ValueError(f"batch must be 1, got shape {img.shape}")
        img = img[0]
    if img.ndim != 3 or img.shape[0] != 3:
        raise ValueError(f"expected (1,3,H,W) RGB, got shape {image.shape}")
    found = []
    dist = ((img[None, :, :, :] - REFERENCES[:, :, None, None]) ** 2).sum(axis=1)
    nearest = np.argmin(dist, axis=0)
    for cls, colour in enumerate(PALETTE):
        mask = (nearest == cls) & np.all(np.abs(img - colour[:, None, None]) < TOLERANCE, axis=0)
        w = mask.shape[1]
        while True:
            hits = np.flatnonzero(mask)
            if hits.size == 0:
                break
            y, x = divmod(int(hits[0]), w)
            y0, x0, y1, x1 = _grow(mask, y, x)
            mask[y0:y1, x0:x1] = False
            if (x1 - x0) >= MIN_SIDE and (y1 - y0) >= MIN_SIDE:
                found.append((float(x0), float(y0), float(x1), float(y1), cls))
    return found


def yolov8_raw(rects, anchors=8400):
    """YOLOv8 raw head layout (1, 4+nc, anchors): cx, cy, w, h, class scores.

    Every object gets several overlapping candidates (so NMS matters): jittered
    copies with lower scores placed before the exact box, and one candidate under
    the usual 0.25 threshold. Other classes get a small background score.
    """
    out = np.zeros((1, 4 + NUM_CLASSES, anchors), dtype=np.float32)
    a = 0
    for i, (x1, y1, x2, y2, cls) in enumerate(rects):
        cx, cy, bw, bh = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
        cands = [
            (cx + 0.03 * bw, cy, bw * 1.02, bh, 0.70),
            (cx, cy - 0.03 * bh, bw, bh * 0.97, 0.80),
            (cx - 0.02 * bw, cy + 0.02 * bh, bw * 0.98, bh * 1.03, 0.60),
            (cx, cy, bw * 0.9, bh * 0.9, 0.10),
            (cx, cy, bw, bh, 0.90 - 0.001 * i),
        ]
        for ccx, ccy, cw, ch, score in cands:
            if a >= anchors:
                return out
            out[0, 0:4, a] = (ccx, ccy, cw, ch)
            out[0, 4:, a] = 0.02
            out[0, 4 + cls, a] = score
            a += 1
    return out


def nms_rows(rects, score=0.9):
    """(1, M, 6) rows of x1, y1, x2, y2, score, class."""
    out = np.zeros((1, len(rects), 6), dtype=np.float32)
    for i, (x1, y1, x2, y2, cls) in enumerate(rects):
        out[0, i] = (x1, y1, x2, y2, score - 0.001 * i, cls)
    return out


def efficient_nms(rects, max_dets=100):
    """EfficientNMS-style 4 tensors: num_dets (1,), boxes (1,M,4), scores (1,M), classes (1,M)."""
    rects = rects[:max_dets]
    num = np.array([len(rects)], dtype=np.int32)
    boxes = np.zeros((1, max_dets, 4), dtype=np.float32)
    scores = np.zeros((1, max_dets), dtype=np.float32)
    classes = np.zeros((1, max_dets), dtype=np.int32)
    for i, (x1, y1, x2, y2, cls) in enumerate(rects):
        boxes[0, i] = (x1, y1, x2, y2)
        scores[0, i] = 0.9 - 0.001 * i
        classes[0, i] = cls
    return num, boxes, scores, classes




def requested_delay_ms(request, pb_utils):
    """Optional artificial latency for ordering tests: request parameter
    "delay_ms" (int), or "jitter_ms" for a random delay in [0, jitter_ms]."""
    try:
        params = __import__("json").loads(request.parameters() or "{}")
    except (ValueError, AttributeError):
        return 0
    if "delay_ms" in params:
        return max(0, int(params["delay_ms"]))
    if "jitter_ms" in params:
        return int(np.random.randint(0, max(1, int(params["jitter_ms"])) + 1))
    return 0
