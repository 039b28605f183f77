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
