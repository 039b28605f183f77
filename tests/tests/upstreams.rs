//! One proxy, two real Tritons (`TRITON_URL` with two entries): requests are balanced over both,
//! a Triton killed mid-run costs no frame (its requests go once more to the other), it takes load
//! again soon after it returns, and with both down every packet gets an error Ack until one comes
//! back. The share each server took is read from each Triton's own counters.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst_triton_tests::proxy::*;
use gst_triton_tests::triton::{Triton, counter, triton_metrics};
use gst_triton_tests::*;
use tonic::Code;

const MODEL: &str = "shapes_nms";
const STREAMS: u32 = 4;
const PER_STREAM: u32 = 150;

/// Requests `t` answered for MODEL so far (its own Prometheus counter).
fn served(t: &Triton) -> f64 {
    counter(
        &triton_metrics(t.metrics_port),
        "nv_inference_request_success",
        MODEL,
    )
}

fn rect(stream: u32, i: u32) -> Rect {
    Rect::new(
        i % 40,
        (i / 40) * 6 + stream,
        8,
        6,
        ((i + stream) % 4) as usize,
    )
}

/// What A and B served since `(a0, b0)`, once Triton's counters add up to `total` (Triton counts
/// a request just after answering it).
async fn settled(
    count: &impl Fn(&Arc<Mutex<Triton>>) -> f64,
    (a, b): (&Arc<Mutex<Triton>>, &Arc<Mutex<Triton>>),
    (a0, b0): (f64, f64),
    total: u32,
) -> (f64, f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (na, nb) = (count(a) - a0, count(b) - b0);
        if na + nb >= f64::from(total) {
            assert_eq!(na + nb, f64::from(total), "a {na}, b {nb}");
            return (na, nb);
        }
        assert!(
            Instant::now() < deadline,
            "Triton counted a {na}, b {nb} of {total}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends PER_STREAM packets on each of `streams` streams (pipelined) and checks that every Ack
/// is OK, in order, with its own rectangle. `acked` counts Acks as they arrive.
async fn run(url: &str, tag: &str, acked: Arc<AtomicUsize>, streams: u32) {
    let note = shapes_note(MODEL, 64, 64, true);
    let mut tasks = Vec::new();
    for s in 0..streams {
        let (url, note, tag, acked) = (
            url.to_string(),
            note.clone(),
            tag.to_string(),
            acked.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut chat = Chat::open_default(&url).await;
            let tx = chat.tx.clone();
            let (note2, tag2) = (note.clone(), tag.clone());
            let sender = tokio::spawn(async move {
                for i in 0..PER_STREAM {
                    let pkt = image_packet(
                        &format!("{tag2}:{s}:{i}"),
                        &note2,
                        draw_tensor(64, 64, &[rect(s, i)]),
                    );
                    tx.send(pkt).await.unwrap();
                }
            });
            for i in 0..PER_STREAM {
                let ack = chat.rx.message().await.unwrap().expect("an Ack");
                assert_eq!(ack.correlation_id, format!("{tag}:{s}:{i}"), "out of order");
                assert_eq!(
                    ack.status_code, 0,
                    "{tag}: packet {s}:{i} failed: {}",
                    ack.status_message
                );
                let (_, data) = ack_output(&ack, "output0");
                assert_same_boxes(&nms_rects(&f32s(&data)), &[rect(s, i)], 0.01);
                acked.fetch_add(1, Ordering::Relaxed);
            }
            sender.await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tritons_share_the_load_and_a_killed_one_costs_no_frame() {
    let (a, b) = Triton::start_two().unwrap();
    let (url_a, url_b) = (a.url(), b.url());
    let (a, b) = (Arc::new(Mutex::new(a)), Arc::new(Mutex::new(b)));
    let proxy = TestProxy::start(
        &format!("{url_a},{url_b}"),
        &["--triton-timeout-secs", "10"],
    )
    .await
    .unwrap();
    let url = proxy.url();
    let count = |t: &Arc<Mutex<Triton>>| served(&t.lock().unwrap());

    // 1. 600 frames over 4 streams: each server takes between 30 % and 70 %.
    let (a0, b0) = (count(&a), count(&b));
    run(&url, "share", Arc::default(), STREAMS).await;
    let (na, nb) = settled(&count, (&a, &b), (a0, b0), STREAMS * PER_STREAM).await;
    let share = na / (na + nb);
    assert!((0.3..=0.7).contains(&share), "a took {na}, b took {nb}");
    // One stream alone is spread too (its packets are balanced one by one, docs/proxy.md).
    let (a1, b1) = (count(&a), count(&b));
    run(&url, "one", Arc::default(), 1).await;
    let (oa, ob) = settled(&count, (&a, &b), (a1, b1), PER_STREAM).await;
    assert!(
        (0.2..=0.8).contains(&(oa / (oa + ob))),
        "one stream: a took {oa}, b took {ob}"
    );
    let m = proxy.metrics().await;
    for (u, n) in [(&url_a, na), (&url_b, nb)] {
        let sent = metric(
            &m,
            &format!("proxy_upstream_requests_total{{upstream=\"{u}\"}}"),
        );
        assert!(sent >= n, "{u}: proxy counted {sent}, Triton {n}\n{m}");
    }

    // 2. A is killed after a third of another 600 frames: every Ack OK, in order, own box.
    let acked = Arc::new(AtomicUsize::new(0));
    let killer = {
        let (a, acked) = (a.clone(), acked.clone());
        let (metrics, url_a) = (proxy.metrics_addr.unwrap(), url_a.clone());
        tokio::spawn(async move {
            while acked.load(Ordering::Relaxed) < (STREAMS * PER_STREAM / 3) as usize {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            // Kill A while it has requests of ours outstanding (the proxy's gauge says so).
            let series = format!("proxy_upstream_outstanding{{upstream=\"{url_a}\"}}");
            let deadline = Instant::now() + Duration::from_secs(10);
            let outstanding = loop {
                let n = metric(&metrics_at(metrics).await, &series);
                if n > 0.0 {
                    break n;
                }
                assert!(
                    Instant::now() < deadline,
                    "A never had a request outstanding"
                );
            };
            tokio::task::spawn_blocking(move || a.lock().unwrap().kill())
                .await
                .unwrap();
            outstanding
        })
    };
    run(&url, "kill", acked.clone(), STREAMS).await;
    let outstanding = killer.await.unwrap();
    eprintln!("A killed with {outstanding} requests outstanding");
    let m = proxy.metrics().await;
    assert_eq!(
        metric(&m, &format!("proxy_upstream_ready{{upstream=\"{url_a}\"}}")),
        0.0,
        "the killed Triton is ejected\n{m}"
    );
    assert!(
        metric(&m, "proxy_upstream_retries_total") >= 1.0,
        "requests in flight at the kill were sent again\n{m}"
    );

    // 3. A restarts: it takes requests again within 10 s of being ready.
    let restarted = a.clone();
    tokio::task::spawn_blocking(move || restarted.lock().unwrap().restart().unwrap())
        .await
        .unwrap();
    let ready_at = Instant::now();
    let mut chat = Chat::open_default(&url).await;
    let note = shapes_note(MODEL, 64, 64, true);
    let mut i = 0;
    while count(&a) < 1.0 {
        assert!(
            ready_at.elapsed() < Duration::from_secs(10),
            "the restarted Triton took no request within 10 s"
        );
        let ack = chat
            .roundtrip(image_packet(
                &i.to_string(),
                &note,
                draw_tensor(64, 64, &[rect(0, i)]),
            ))
            .await;
        assert_eq!(ack.status_code, 0, "{}", ack.status_message);
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 4. Both down: an error Ack per packet naming Triton, the stream goes on; one returns: OK.
    for t in [&a, &b] {
        let t = t.clone();
        tokio::task::spawn_blocking(move || t.lock().unwrap().kill())
            .await
            .unwrap();
    }
    for j in 0..3 {
        let ack = chat
            .roundtrip(image_packet(
                &format!("down{j}"),
                &note,
                draw_tensor(64, 64, &[rect(1, j)]),
            ))
            .await;
        assert_eq!(Code::from(ack.status_code), Code::Unavailable, "{ack:?}");
        assert!(
            ack.status_message.contains("Triton at http://127.0.0.1:"),
            "{}",
            ack.status_message
        );
    }
    let back = b.clone();
    tokio::task::spawn_blocking(move || back.lock().unwrap().restart().unwrap())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ack = chat
            .roundtrip(image_packet(
                "back",
                &note,
                draw_tensor(64, 64, &[rect(2, 5)]),
            ))
            .await;
        if ack.status_code == 0 {
            let (_, data) = ack_output(&ack, "output0");
            assert_same_boxes(&nms_rects(&f32s(&data)), &[rect(2, 5)], 0.01);
            break;
        }
        assert_eq!(Code::from(ack.status_code), Code::Unavailable, "{ack:?}");
        assert!(Instant::now() < deadline, "no recovery after B returned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
