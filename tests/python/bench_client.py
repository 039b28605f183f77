"""A Python grpcio client for the proxy benchmark (`cargo bench -p gst-triton-tests --bench proxy --
--python`): what the process in the middle costs when its client is a Python script with grpcio's
default settings, as the original client was. Each stream is a thread sending 640x640 FP32 frames
one at a time (send, wait for the answer) to the `identity` model:

- `--protocol kserve`: KServe `ModelInfer` calls with tritonclient.grpc (to nginx `grpc_pass` in
  front of Triton, or to Triton itself);
- `--protocol chat`: the proxy's `Chat` stream with the x-domino-api-key header, base64 Acks, or
  binary ones with `--binary`.

  .venv/bin/python tests/python/bench_client.py --target HOST:PORT --protocol chat|kserve \
      [--streams 1] [--frames 120] [--binary] [--key test-key]

Prints one JSON line: {"frames": answered, "errors": n, "seconds": wall time}.
"""

import base64
import argparse
import json
import os
import queue
import sys
import threading
import time

import numpy as np

sys.dont_write_bytecode = True
SHAPE = [1, 3, 640, 640]


def frame():
    return ((np.arange(3 * 640 * 640, dtype=np.uint32) % 255).astype(np.float32) / 255.0).reshape(SHAPE)


def kserve_stream(target, frames, data, out):
    import tritonclient.grpc as tc

    client = tc.InferenceServerClient(target)
    ok = errors = 0
    for _ in range(frames):
        inp = tc.InferInput("images", SHAPE, "FP32")
        inp.set_data_from_numpy(data)
        try:
            r = client.infer("identity", [inp])
        except Exception:
            errors += 1
            continue
        # Only an answer that is the frame counts (the model is the identity).
        if np.array_equal(r.as_numpy("output0"), data):
            ok += 1
        else:
            errors += 1
    out.append((ok, errors))


def echoed(ack, binary):
    """The output tensor's bytes in an Ack: binary raw_outputs, or base64 in the message."""
    if binary:
        return ack.raw_outputs[0].data if len(ack.raw_outputs) == 1 else None
    return base64.b64decode(json.loads(ack.message)["outputs"]["output0"]["b64"])


def chat_stream(target, frames, data, binary, key, out):
    import grpc
    import multimodal_pb2 as pb
    import multimodal_pb2_grpc as pb_grpc

    note = json.dumps({
        "model": "identity",
        "inputs": [{"name": "images", "shape": SHAPE, "dtype": "FP32", "from": "image"}],
        "binary": binary,
    })
    opts = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    stub = pb_grpc.MultiModalStub(grpc.insecure_channel(target, options=opts))
    outbox = queue.Queue()

    def packets():
        while (p := outbox.get()) is not None:
            yield p

    acks = stub.Chat(packets(), metadata=[("x-domino-api-key", key)])
    payload = data.tobytes()
    ok = errors = 0
    for i in range(frames):
        p = pb.DataPacket()
        p.meta.correlation_id = str(i)
        p.meta.note = note
        p.image.data = payload
        outbox.put(p)
        ack = next(acks)
        if ack.status_code == 0 and echoed(ack, binary) == payload:
            ok += 1
        else:
            errors += 1
    outbox.put(None)
    for _ in acks:
        pass
    out.append((ok, errors))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True)
    ap.add_argument("--protocol", choices=["chat", "kserve"], required=True)
    ap.add_argument("--streams", type=int, default=1)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--binary", action="store_true")
    ap.add_argument("--key", default="test-key")
    args = ap.parse_args()
    if args.protocol == "chat":
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, here)
        from seed_client import generate_stubs

        generate_stubs(os.path.join(here, "..", "..", "proto", "proto"))
    data = frame()
    out = []
    if args.protocol == "kserve":
        work = lambda: kserve_stream(args.target, args.frames, data, out)  # noqa: E731
    else:
        work = lambda: chat_stream(args.target, args.frames, data, args.binary, args.key, out)  # noqa: E731
    threads = [threading.Thread(target=work) for _ in range(args.streams)]
    t = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    seconds = time.monotonic() - t
    ok = sum(o for o, _ in out)
    errors = sum(e for _, e in out) + (args.streams - len(out)) * args.frames
    print(json.dumps({"frames": ok, "errors": errors, "seconds": seconds}))


if __name__ == "__main__":
    main()
