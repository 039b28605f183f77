"""A client as the seed's Python client would be: stubs generated with grpcio-tools from our
multimodal.proto, a frame sent over Chat with the x-domino-api-key header, base64 outputs decoded
with numpy, and compared with Triton's direct answer (tritonclient)."""

import base64
import json
import os
import sys
import tempfile

import numpy as np

sys.dont_write_bytecode = True


def generate_stubs(proto_dir):
    from grpc_tools import protoc

    out = tempfile.mkdtemp(prefix="mm-stubs-")
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}", "multimodal.proto"])
    if rc != 0:
        raise SystemExit(f"protoc failed with {rc}")
    sys.path.insert(0, out)


def main():
    generate_stubs(os.environ["PROTO_DIR"])
    import grpc
    import multimodal_pb2 as pb
    import multimodal_pb2_grpc as pb_grpc
    import tritonclient.grpc as tc

    img = np.full((1, 3, 640, 640), 114 / 255, np.float32)
    img[0, :, 100:200, 50:250] = np.array([1, 0, 0], np.float32)[:, None, None]
    img[0, :, 300:420, 400:460] = np.array([0, 0, 1], np.float32)[:, None, None]
    note = json.dumps({
        "model": "shapes_yolov8",
        "inputs": [{"name": "images", "shape": [1, 3, 640, 640], "dtype": "FP32", "from": "image"}],
        "outputs": ["output0"],
    })
    opts = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    channel = grpc.insecure_channel(os.environ["PROXY_ADDR"], options=opts)
    stub = pb_grpc.MultiModalStub(channel)

    def packets():
        p = pb.DataPacket()
        p.meta.correlation_id = "cam-001:0"
        p.meta.note = note
        p.image.data = img.tobytes()
        yield p

    acks = list(stub.Chat(packets(), metadata=[("x-domino-api-key", os.environ["DOMINO_API_KEY"])]))
    assert len(acks) == 1, acks
    ack = acks[0]
    assert ack.correlation_id == "cam-001:0", ack.correlation_id
    assert ack.status_code == 0, ack.status_message
    msg = json.loads(ack.message)
    out = msg["outputs"]["output0"]
    via_proxy = np.frombuffer(base64.b64decode(out["b64"]), dtype=out["dtype"]).reshape(out["shape"])

    direct = tc.InferenceServerClient(os.environ["TRITON_URL"])
    inp = tc.InferInput("images", img.shape, "FP32")
    inp.set_data_from_numpy(img)
    want = direct.infer("shapes_yolov8", [inp]).as_numpy("output0")
    assert via_proxy.shape == want.shape, (via_proxy.shape, want.shape)
    assert via_proxy.dtype == want.dtype, (via_proxy.dtype, want.dtype)
    assert np.array_equal(via_proxy, want), "values differ"

    # Without the key: UNAUTHENTICATED, naming the headers.
    try:
        list(stub.Chat(packets()))
        raise SystemExit("unauthenticated call was admitted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e.code()
        assert "x-domino-api-key" in e.details(), e.details()
    print(f"same as Triton direct: output0 {via_proxy.shape} {via_proxy.dtype}")


if __name__ == "__main__":
    main()
