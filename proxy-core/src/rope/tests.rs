use super::*;
use proptest::prelude::*;
use prost::Message;
use triton_proto::inference::ModelInferRequest;
use triton_proto::inference::model_infer_request::InferInputTensor;
use triton_proto::multimodal::{DataPacket, Frame, Image, Meta, Video, data_packet::Payload};

/// `bytes` cut at the given points, each piece its own allocation.
fn pieces(bytes: &[u8], cuts: &[usize]) -> Rope {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut r = Rope::default();
    let mut at = 0;
    for c in cuts.into_iter().chain([bytes.len()]) {
        r.push(Bytes::copy_from_slice(&bytes[at..c]));
        at = c;
    }
    r
}

fn packet(data: Vec<u8>, note: &str) -> DataPacket {
    packet_of(0, data, note)
}

/// A packet whose payload is a frame (0), an image (1) or a video (2).
fn packet_of(kind: usize, data: Vec<u8>, note: &str) -> DataPacket {
    let data = data.into();
    let payload = match kind {
        0 => Payload::Frame(Frame { data }),
        1 => Payload::Image(Image { data }),
        _ => Payload::Video(Video { data }),
    };
    DataPacket {
        meta: Some(Meta {
            correlation_id: "cam-1:42".into(),
            note: note.into(),
            stream_id: "cam-1".into(),
            capture_ts_ns: -5,
        }),
        payload: Some(payload),
    }
}

proptest! {
    #[test]
    fn a_packet_cut_anywhere_splits_into_its_fields_and_its_payload(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        note in "[a-z{}\":,]{0,40}",
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        kind in 0usize..3,
    ) {
        let p = packet_of(kind, data.clone(), &note);
        let rope = pieces(&p.encode_to_vec(), &cuts);
        let s = split(rope, &[&[2, 1], &[3, 1], &[4, 1]]).unwrap();
        let small = DataPacket::decode(s.small.freeze()).unwrap();
        prop_assert_eq!(small, packet_of(kind, vec![], &note));
        let taken: Vec<u8> = s.large.iter().flat_map(|(_, r)| r.to_bytes().to_vec()).collect();
        prop_assert_eq!(taken, data.clone());
        // Each payload's bytes are named by its own path.
        prop_assert!(s.large.iter().all(|(i, _)| *i == kind));
        // Nothing of the payload was copied: its bytes are pieces of the input.
        prop_assert!(s.large.len() <= 1);
    }

    #[test]
    fn slices_and_splits_of_a_rope_are_the_bytes_they_name(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        a in any::<usize>(), b in any::<usize>(),
    ) {
        let rope = pieces(&bytes, &cuts);
        prop_assert_eq!(rope.len(), bytes.len());
        let (a, b) = (a % (bytes.len() + 1), b % (bytes.len() + 1));
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert_eq!(&rope.slice(lo..hi).to_bytes()[..], &bytes[lo..hi]);
        let mut rest = rope.clone();
        let head = rest.split_to(lo);
        prop_assert_eq!(&head.to_bytes()[..], &bytes[..lo]);
        prop_assert_eq!(&rest.to_bytes()[..], &bytes[lo..]);
        if bytes.len() >= 3 {
            prop_assert_eq!(rope.peek::<3>().unwrap(), [bytes[0], bytes[1], bytes[2]]);
        }
    }
}

#[test]
fn a_payload_is_taken_without_copying_its_pieces() {
    let data = vec![7u8; 10_000];
    let enc = packet(data, "").encode_to_vec();
    let rope = pieces(&enc, &[3000, 6000]);
    let s = split(rope.clone(), &[&[2, 1]]).unwrap();
    let (_, taken) = &s.large[0];
    assert_eq!(taken.len(), 10_000);
    // Each piece of the payload points into one of the received pieces.
    for t in taken.parts() {
        let inside = rope.parts().any(|p| {
            let (ps, ts) = (p.as_ptr() as usize, t.as_ptr() as usize);
            ts >= ps && ts + t.len() <= ps + p.len()
        });
        assert!(inside, "a piece of the payload was copied");
    }
    assert!(s.small.len() < 100, "small part {} bytes", s.small.len());
}

#[test]
fn repeated_top_level_fields_come_back_in_order_and_rejoin_to_the_same_message() {
    let req = ModelInferRequest {
        model_name: "identity".into(),
        inputs: vec![
            InferInputTensor {
                name: "a".into(),
                ..Default::default()
            },
            InferInputTensor {
                name: "b".into(),
                ..Default::default()
            },
        ],
        raw_input_contents: vec![vec![1u8, 2, 3].into(), Bytes::new(), vec![9u8; 40].into()],
        ..Default::default()
    };
    let s = split(pieces(&req.encode_to_vec(), &[5, 17, 30]), &[&[7]]).unwrap();
    let lens: Vec<usize> = s.large.iter().map(|(_, r)| r.len()).collect();
    assert_eq!(lens, [3, 0, 40]);
    let mut out = Out::default();
    out.small().put_slice(&s.small);
    for (_, r) in &s.large {
        out.field(7, &[], r);
    }
    let back = ModelInferRequest::decode(out.finish().to_bytes()).unwrap();
    assert_eq!(back, req);
}

#[test]
fn malformed_messages_are_errors_not_panics() {
    let enc = packet(vec![1; 50], "{}").encode_to_vec();
    for cut in [1, 3, 10, enc.len() - 1] {
        let r = split(Rope::from(Bytes::copy_from_slice(&enc[..cut])), &[&[2, 1]]);
        assert!(r.is_err(), "{cut} bytes of {} accepted", enc.len());
    }
    assert_eq!(
        split(Rope::from(Bytes::from_static(&[0x0b])), &[]).unwrap_err(),
        Malformed("group or unknown wire type")
    );
    assert_eq!(
        split(Rope::from(Bytes::from_static(&[0x02, 0])), &[]).unwrap_err(),
        Malformed("field number 0")
    );
}

#[test]
fn lengths_of_fields_and_varints_match_what_is_written() {
    for n in [0usize, 1, 127, 128, 16_383, 16_384, 5_000_000] {
        let mut b = BytesMut::new();
        put_varint(&mut b, n as u64);
        let varint_len = prost::encoding::encoded_len_varint(n as u64);
        assert_eq!(b.len(), varint_len);
        let mut out = Out::default();
        out.field(7, &[], &Rope::from(Bytes::from(vec![0u8; n])));
        // The key of field 7 (one byte), the length, the bytes.
        assert_eq!(out.finish().len(), 1 + varint_len + n);
    }
}

/// A hostile packet: `n` unknown 2-byte varint fields (field 15, value 1), each byte its own
/// piece, as a client sending 1-byte DATA frames delivers it. Splitting it must visit each piece
/// a bounded number of times (a scan that re-walked the rest of the rope per byte visited
/// n² pieces: 32 million for this one, and minutes for 16 MiB).
#[test]
fn splitting_visits_each_piece_a_bounded_number_of_times() {
    for n in [1_000usize, 4_000] {
        let bytes: Vec<u8> = std::iter::repeat_n([15u8 << 3, 1], n).flatten().collect();
        let cuts: Vec<usize> = (1..bytes.len()).collect();
        let rope = pieces(&bytes, &cuts);
        assert_eq!(rope.parts().len(), 2 * n);
        visits::take();
        let s = split(rope, &[&[2, 1]]).unwrap();
        let visited = visits::take();
        assert_eq!(&s.small[..], &bytes[..], "unknown fields are kept");
        assert!(
            visited <= 2 * (2 * n),
            "{visited} piece visits for {} pieces",
            2 * n
        );
    }
    // Taking a field spanning many pieces costs those pieces, once.
    let p = packet(vec![3u8; 5_000], "");
    let enc = p.encode_to_vec();
    let cuts: Vec<usize> = (1..enc.len()).collect();
    let rope = pieces(&enc, &cuts);
    visits::take();
    let s = split(rope, &[&[2, 1]]).unwrap();
    let visited = visits::take();
    assert_eq!(s.large[0].1.len(), 5_000);
    assert!(
        visited <= 2 * enc.len(),
        "{visited} visits for {} pieces",
        enc.len()
    );
}

/// A deframer-sized rope of many small pieces, cut message by message: each cut costs the
/// pieces it takes, not the ones left behind.
#[test]
fn split_to_costs_the_pieces_it_takes() {
    let bytes = vec![9u8; 20_000];
    let cuts: Vec<usize> = (1..bytes.len()).collect();
    let mut rope = pieces(&bytes, &cuts);
    visits::take();
    let mut taken = 0;
    while !rope.is_empty() {
        taken += rope.split_to(10.min(rope.len())).len();
    }
    assert_eq!(taken, 20_000);
    let visited = visits::take();
    assert!(
        visited <= 20_000 + 2_000,
        "{visited} visits for 20000 pieces"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any bytes, cut anywhere into up to thousands of pieces (what a client's DATA frames make
    /// of a packet): splitting never panics, and it visits pieces in linear time, at most twice
    /// each plus twice per byte (a field per byte at most), whatever it finds. The fuzzing of
    /// issue 42, item 11, as a property test: the machine has no nightly toolchain for
    /// cargo-fuzz.
    #[test]
    fn any_bytes_in_any_pieces_split_in_linear_time_without_panicking(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
        every in 1usize..64,
        nested in any::<bool>(),
    ) {
        let cuts: Vec<usize> = (every..bytes.len()).step_by(every).collect();
        let rope = pieces(&bytes, &cuts);
        let n = rope.parts().len();
        visits::take();
        let paths: &[&[u32]] = if nested { &[&[2, 1], &[3, 1], &[4, 1]] } else { &[&[7]] };
        let _ = split(rope, paths);
        let visited = visits::take();
        prop_assert!(visited <= 2 * n + 2 * bytes.len() + 4, "{} visits, {} pieces, {} bytes", visited, n, bytes.len());
    }

    /// The same for well-formed packets of many small unknown fields, the worst case for a scan.
    #[test]
    fn packets_of_many_fields_split_in_linear_time(
        fields in 1usize..20_000,
        every in 1usize..512,
    ) {
        let bytes: Vec<u8> = std::iter::repeat_n([15u8 << 3, 1], fields).flatten().collect();
        let cuts: Vec<usize> = (every..bytes.len()).step_by(every).collect();
        let rope = pieces(&bytes, &cuts);
        let n = rope.parts().len();
        visits::take();
        let s = split_limited(rope, &[&[2, 1]], usize::MAX).unwrap();
        let visited = visits::take();
        prop_assert_eq!(s.small.len(), bytes.len());
        prop_assert!(visited <= 2 * n + 4, "{} visits, {} pieces", visited, n);
        // And a limit stops the scan early, with its own error.
        let cut = pieces(&bytes, &cuts);
        prop_assert_eq!(
            split_limited(cut, &[&[2, 1]], fields - 1).unwrap_err(),
            Malformed(TOO_MANY_FIELDS)
        );
    }
}
