use super::*;

fn message(body: &[u8]) -> Vec<u8> {
    let mut m = vec![0];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

#[test]
fn messages_are_cut_out_of_frames_cut_anywhere() {
    let mut wire = message(b"first");
    wire.extend(message(b""));
    wire.extend(message(&[7; 300]));
    for step in [1, 2, 5, 6, 64, wire.len()] {
        let mut d = Deframer::new(1000);
        let mut got = Vec::new();
        for chunk in wire.chunks(step) {
            d.push(Bytes::copy_from_slice(chunk));
            while let Some(m) = d.message().unwrap() {
                got.push(m.to_bytes().to_vec());
            }
        }
        assert_eq!(
            got,
            [b"first".to_vec(), vec![], vec![7; 300]],
            "frames of {step}"
        );
        assert_eq!(d.pending(), 0);
    }
}

#[test]
fn a_message_over_the_limit_or_compressed_is_refused_and_a_cut_one_is_pending() {
    let mut d = Deframer::new(4);
    d.push(Bytes::from(message(b"12345")));
    let e = d.message().unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange);
    assert!(
        e.message().contains("found 5 bytes, the limit is: 4 bytes"),
        "{e}"
    );

    let mut d = Deframer::new(100);
    let mut m = message(b"abc");
    m[0] = 1;
    d.push(Bytes::from(m));
    assert_eq!(d.message().unwrap_err().code(), Code::Unimplemented);

    let mut d = Deframer::new(100);
    d.push(Bytes::from(message(b"abcdef")[..7].to_vec()));
    assert!(d.message().unwrap().is_none());
    assert_eq!(d.pending(), 7);
}

#[test]
fn a_prefixed_rope_is_one_grpc_message() {
    let mut r = Rope::from(Bytes::from_static(b"ab"));
    r.push(Bytes::from_static(b"cde"));
    let m = prefixed(r).to_bytes();
    assert_eq!(&m[..], &message(b"abcde")[..]);
}

#[test]
fn http_statuses_without_grpc_status_map_as_the_spec_says() {
    let code = |n: u16| http_status(http::StatusCode::from_u16(n).unwrap()).code();
    assert_eq!(code(400), Code::Internal);
    assert_eq!(code(401), Code::Unauthenticated);
    assert_eq!(code(403), Code::PermissionDenied);
    assert_eq!(code(404), Code::Unimplemented);
    for n in [429, 502, 503, 504] {
        assert_eq!(code(n), Code::Unavailable);
    }
    assert_eq!(code(500), Code::Unknown);
}

mod chat_packets {
    use prost::Message;
    use triton_proto::multimodal::data_packet::Payload;
    use triton_proto::multimodal::{DataPacket, Frame, Image, Meta, Video};

    use super::super::chat::decode;
    use super::*;

    fn encoded(payloads: &[Payload]) -> Vec<u8> {
        // A oneof written more than once on the wire (legal protobuf): concatenated messages.
        let mut wire = DataPacket {
            meta: Some(Meta {
                correlation_id: "c".into(),
                ..Default::default()
            }),
            payload: None,
        }
        .encode_to_vec();
        for p in payloads {
            wire.extend(
                DataPacket {
                    meta: None,
                    payload: Some(p.clone()),
                }
                .encode_to_vec(),
            );
        }
        wire
    }

    fn decoded(payloads: &[Payload]) -> (DataPacket, Vec<u8>) {
        let wire = encoded(payloads);
        let mut rope = Rope::default();
        for c in wire.chunks(7) {
            rope.push(Bytes::copy_from_slice(c));
        }
        let p = decode(rope).unwrap();
        (p.pkt, p.data.to_bytes().to_vec())
    }

    #[test]
    fn each_payload_kind_keeps_its_own_bytes_and_the_last_payload_wins() {
        let frame = Payload::Frame(Frame {
            data: vec![1, 1].into(),
        });
        let image = Payload::Image(Image {
            data: vec![2, 2, 2].into(),
        });
        let video = Payload::Video(Video {
            data: vec![3].into(),
        });
        for (p, want) in [
            (&frame, vec![1, 1]),
            (&image, vec![2, 2, 2]),
            (&video, vec![3]),
        ] {
            let (pkt, data) = decoded(std::slice::from_ref(p));
            assert_eq!(pkt.meta.unwrap().correlation_id, "c");
            assert_eq!(data, want);
        }
        // As any protobuf decoder reads it: the image, with its bytes (not the frame's).
        let (pkt, data) = decoded(&[frame.clone(), image.clone()]);
        assert!(matches!(pkt.payload, Some(Payload::Image(_))));
        assert_eq!(data, [2, 2, 2]);
        // An image without bytes after a frame: an empty image, not the frame's bytes.
        let empty = Payload::Image(Image::default());
        let (pkt, data) = decoded(&[frame, empty]);
        assert!(matches!(pkt.payload, Some(Payload::Image(_))));
        assert!(data.is_empty());
    }

    #[test]
    fn a_message_that_is_not_a_data_packet_is_an_error_naming_it() {
        let e = decode(Rope::from(Bytes::from_static(&[0x0a, 0x05, 1]))).unwrap_err();
        assert_eq!(e.code(), Code::Internal);
        assert!(e.message().contains("DataPacket"), "{e}");
    }
}
