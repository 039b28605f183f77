//! Class names.

/// The 80 COCO class names, in YOLO order.
pub const COCO80: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

/// Parses class names: one per line, or a JSON list, or comma-separated on one line.
pub use triton_client::labels::parse as parse_labels;

/// The output a model may add to name its classes: BYTES, one element per class in id order
/// (batched: `[B, nc]`, every row the same). The `onnx` and `yolov8_person` models fill it from
/// the ONNX export's metadata. It is never decoded as detections.
pub const LABELS_OUTPUT: &str = "class_names";

/// The class names in a `LABELS_OUTPUT` tensor: Triton's BYTES encoding (each element a 4-byte
/// little-endian length, then that many bytes), first row only. `None` for anything malformed
/// (a length past the end, bytes that are not UTF-8, an empty tensor).
pub fn labels_from_tensor(shape: &[i64], data: &[u8]) -> Option<Vec<String>> {
    let per_row = usize::try_from(*shape.last()?).ok()?;
    // Each name takes at least its 4-byte length: a server-sent count the data cannot hold
    // (a shape of [1, 1<<40]) is malformed, and is never allocated for.
    if per_row > data.len() / 4 {
        return None;
    }
    let mut names = Vec::with_capacity(per_row);
    let mut rest = data;
    while names.len() < per_row {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if len > tail.len() {
            return None;
        }
        names.push(std::str::from_utf8(&tail[..len]).ok()?.trim().to_string());
        rest = &tail[len..];
    }
    (!names.is_empty()).then_some(names)
}
