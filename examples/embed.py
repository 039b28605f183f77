#!/usr/bin/env python3
"""Embedding the elements from Python (PyGObject): build a pipeline, read each frame's
TritonResultMeta (a GstCustomMeta) in a pad probe, print per-frame counts per label.

    GST_PLUGIN_PATH=target/release python3 examples/embed.py VIDEO URL [MODEL] [TRANSPORT]

Needs Debian's python3-gi and gir1.2-gstreamer-1.0 (system python3)."""

import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: embed.py VIDEO URL [MODEL] [TRANSPORT proxy|triton]")
    video, url = sys.argv[1], sys.argv[2]
    model = sys.argv[3] if len(sys.argv) > 3 else "yolov8n"
    transport = sys.argv[4] if len(sys.argv) > 4 else "proxy"
    Gst.init(None)
    pipeline = Gst.parse_launch(
        f'filesrc location="{video}" ! decodebin ! videoconvert ! tritonletterbox '
        f"! tritoninfer url={url} model={model} transport={transport} ! fakesink name=sink sync=false"
    )

    def probe(pad, info):
        buf = info.get_buffer()
        meta = buf.get_custom_meta("TritonResultMeta")
        if meta is not None:
            s = meta.get_structure()
            c = s.get_value("counts")  # a structure: label -> count
            n = c.n_fields() if c is not None else 0
            counts = {c.nth_field_name(i): c.get_value(c.nth_field_name(i)) for i in range(n)}
            text = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
            print(f"frame {s.get_value('frame')} {s.get_value('status')} {text}", flush=True)
        return Gst.PadProbeReturn.OK

    pipeline.get_by_name("sink").get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, probe)
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)
    if msg.type == Gst.MessageType.ERROR:
        err, _ = msg.parse_error()
        sys.exit(f"embed.py: {err.message}")


if __name__ == "__main__":
    main()
