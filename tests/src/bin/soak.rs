//! `soak`: a long run through `triton-proxy` to a ground-truth model while Triton is restarted
//! twice and the proxy once (each a SIGKILL, like a crash), on loopback only. With `--graceful`
//! the faults are a rolling update instead: two Triton replicas behind the proxy, replica A
//! stopped with SIGTERM and started again at 1/4, the proxy the same at 1/2, replica B at 3/4;
//! then not one error Ack is allowed (a replica was always ready, and the proxy drains).
//!
//! 8 camera-like streams (30 frames/s each, up to 4 packets in flight) send drawn rectangles to
//! `shapes_nms`; every OK Ack is checked against the rectangle drawn. A stream that breaks (the
//! proxy died) reconnects and sends again what was not answered. Printed: frames sent, Acks ok,
//! error Acks (the outages), misordered Acks, lost frames (sent, never answered), wrong answers,
//! proxy RSS start/peak/end, and latency p50/p99; the last line is
//! `soak: sent N, ok N, errors N, lost 0, misordered 0`. Exit status 1 when a frame was lost, an
//! Ack came out of order, an answer was wrong, no frame was answered ok after the last fault, a
//! stream heard nothing for 30 s, a stream was reopened more often than the proxy's one restart
//! explains (once per stream), or there were more error Acks than the Tritons' time away allows
//! (`(away s + 2 s × 2 restarts) × streams × f/s`; none in a rolling update).
//!
//! Usage: `soak [--minutes M] [--frames N] [--streams S] [--fps F] [--graceful]` (scripts/soak.sh
//! builds and runs it). Without `--minutes` it runs until every stream sent `--frames` (5000).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst_triton_tests::proxy::{ProxyProcess, ack_output, image_packet, shapes_note};
use gst_triton_tests::triton::{Triton, repo_root};
use gst_triton_tests::{MAX_MESSAGE, Rect, draw_tensor, f32s, nms_rects};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use triton_proto::multimodal::multi_modal_client::MultiModalClient;

const SIZE: usize = 64;
const IN_FLIGHT: usize = 4;

struct Args {
    minutes: Option<f64>,
    frames: u64,
    streams: usize,
    fps: f64,
    graceful: bool,
}

fn args() -> Args {
    let mut a = Args {
        minutes: None,
        frames: 5000,
        streams: 8,
        fps: 30.0,
        graceful: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| -> String {
            it.next()
                .unwrap_or_else(|| fail(&format!("{name}: expected a value")))
        };
        match flag.as_str() {
            "--minutes" => {
                a.minutes =
                    Some(value("--minutes").parse().unwrap_or_else(|_| {
                        fail("--minutes: expected a number of minutes, e.g. 2")
                    }))
            }
            "--frames" => {
                a.frames = value("--frames")
                    .parse()
                    .unwrap_or_else(|_| fail("--frames: expected a whole number"))
            }
            "--streams" => {
                a.streams = value("--streams")
                    .parse()
                    .unwrap_or_else(|_| fail("--streams: expected a whole number"))
            }
            "--graceful" => a.graceful = true,
            "--fps" => {
                a.fps = value("--fps")
                    .parse()
                    .unwrap_or_else(|_| fail("--fps: expected a number"))
            }
            other => fail(&format!(
                "unknown argument '{other}'; expected --minutes M, --frames N, --streams S, --fps F, --graceful"
            )),
        }
    }
    a
}

fn fail(msg: &str) -> ! {
    eprintln!("soak: {msg}");
    std::process::exit(2)
}

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    misordered: AtomicU64,
    wrong: AtomicU64,
    resent: AtomicU64,
    lost: AtomicU64,
    /// OK Acks after the last fault.
    ok_after_faults: AtomicU64,
    /// Streams that heard nothing for 30 s (a stall: the stream was then replaced).
    stalls: AtomicU64,
    /// Streams opened after a stream's first (each a broken or ended stream replaced).
    reconnects: AtomicU64,
    /// Milliseconds the Triton replicas were away (from the stop or kill until ready again).
    triton_away_ms: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

/// The rectangle drawn in frame `seq` of stream `s`.
fn rect(s: usize, seq: u64) -> Rect {
    let k = (seq as usize + s * 3) % 16;
    Rect::new(
        4 + (k % 4) as u32 * 10,
        4 + (k / 4) as u32 * 10,
        16,
        12,
        k % 4,
    )
}

fn packet(s: usize, seq: u64) -> triton_proto::multimodal::DataPacket {
    image_packet(
        &format!("{s}-{seq}"),
        &shapes_note("shapes_nms", SIZE, SIZE, true),
        draw_tensor(SIZE, SIZE, &[rect(s, seq)]),
    )
}

/// Whether an OK Ack holds exactly the drawn rectangle.
fn answer_is_right(ack: &triton_proto::multimodal::Ack, want: &Rect) -> bool {
    let (_, data) = ack_output(ack, "output0");
    let boxes = nms_rects(&f32s(&data));
    boxes.len() == 1 && boxes[0].class == want.class && boxes[0].max_edge_error(want) <= 1.5
}

/// One camera: sends at `fps` until `frames` or `stop`, keeps up to IN_FLIGHT outstanding,
/// reconnects after a broken stream and sends the unanswered frames again.
async fn camera(
    s: usize,
    url: String,
    frames: u64,
    fps: f64,
    stop: tokio::time::Instant,
    faults_over: Arc<std::sync::atomic::AtomicBool>,
    st: Arc<Stats>,
) {
    let interval = Duration::from_secs_f64(1.0 / fps);
    let mut next_seq = 0u64;
    let mut next_at = tokio::time::Instant::now();
    let mut outstanding: VecDeque<(u64, Instant)> = VecDeque::new();
    let drain_deadline = stop + Duration::from_secs(60);
    let mut opened = false;
    'connections: loop {
        if tokio::time::Instant::now() > drain_deadline {
            break;
        }
        let client = match tonic::transport::Endpoint::from_shared(url.clone())
            .unwrap()
            .connect_timeout(Duration::from_secs(2))
            .connect()
            .await
        {
            Ok(ch) => MultiModalClient::new(ch)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let (tx, rx) = mpsc::channel(IN_FLIGHT * 2);
        let mut req = tonic::Request::new(ReceiverStream::new(rx));
        req.metadata_mut()
            .insert("x-domino-api-key", "test-key".parse().unwrap());
        let mut acks = match client.clone().chat(req).await {
            Ok(r) => {
                if opened {
                    st.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                opened = true;
                r.into_inner()
            }
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        for (seq, t) in outstanding.iter_mut() {
            *t = Instant::now();
            st.resent.fetch_add(1, Ordering::Relaxed);
            if tx.send(packet(s, *seq)).await.is_err() {
                continue 'connections;
            }
        }
        loop {
            let now = tokio::time::Instant::now();
            let more = next_seq < frames && now < stop;
            if !more && outstanding.is_empty() {
                return;
            }
            if !more && now > drain_deadline {
                break 'connections;
            }
            let can_send = more && outstanding.len() < IN_FLIGHT;
            tokio::select! {
                _ = tokio::time::sleep_until(next_at), if can_send => {
                    if tx.send(packet(s, next_seq)).await.is_err() {
                        continue 'connections;
                    }
                    outstanding.push_back((next_seq, Instant::now()));
                    st.sent.fetch_add(1, Ordering::Relaxed);
                    next_seq += 1;
                    next_at = (next_at + interval).max(tokio::time::Instant::now() - interval * 4);
                }
                m = tokio::time::timeout(Duration::from_secs(30), acks.message()) => {
                    let ack = match m {
                        Ok(Ok(Some(a))) => a,
                        // Silent for 30 s: a stall (counted), then a new stream.
                        Err(_) => {
                            st.stalls.fetch_add(1, Ordering::Relaxed);
                            continue 'connections;
                        }
                        // Ended or broken: a new stream.
                        _ => continue 'connections,
                    };
                    let seq: u64 = ack
                        .correlation_id
                        .rsplit('-')
                        .next()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(u64::MAX);
                    let sent_at = match outstanding.front() {
                        Some((front, t)) if *front == seq => {
                            let t = *t;
                            outstanding.pop_front();
                            t
                        }
                        _ => {
                            st.misordered.fetch_add(1, Ordering::Relaxed);
                            match outstanding.iter().position(|(q, _)| *q == seq) {
                                Some(i) => outstanding.remove(i).unwrap().1,
                                None => continue,
                            }
                        }
                    };
                    if ack.status_code == 0 {
                        st.ok.fetch_add(1, Ordering::Relaxed);
                        if faults_over.load(Ordering::Relaxed) {
                            st.ok_after_faults.fetch_add(1, Ordering::Relaxed);
                        }
                        if !answer_is_right(&ack, &rect(s, seq)) {
                            st.wrong.fetch_add(1, Ordering::Relaxed);
                        }
                        st.latencies_us.lock().unwrap().push(sent_at.elapsed().as_micros() as u64);
                    } else {
                        st.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
    st.lost
        .fetch_add(outstanding.len() as u64, Ordering::Relaxed);
}

/// A model repository with only `shapes_nms` (fast restarts).
fn model_repo() -> std::path::PathBuf {
    let root = repo_root();
    let dir = std::env::temp_dir().join(format!("soak-models-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["shapes_nms", "shapes_backend.py", "shapes_common.py"] {
        std::os::unix::fs::symlink(root.join("models").join(name), dir.join(name)).unwrap();
    }
    dir
}

fn mib(b: u64) -> u64 {
    b >> 20
}

fn main() {
    let a = args();
    let repo = model_repo();
    let t0 = Instant::now();
    let start_triton =
        || Triton::start_with(&repo).unwrap_or_else(|e| fail(&format!("Triton: {e:#}")));
    // Replicas: one (crashes), or A and B side by side (a rolling update).
    let mut tritons: Vec<Triton> = if a.graceful {
        std::thread::scope(|sc| {
            let b = sc.spawn(start_triton);
            vec![start_triton(), b.join().expect("start B")]
        })
    } else {
        vec![start_triton()]
    };
    let upstreams: Vec<String> = tritons.iter().map(Triton::url).collect();
    let proxy = Arc::new(Mutex::new(ProxyProcess::start(&upstreams.join(","), &[])));
    let url = proxy.lock().unwrap().url();
    let planned = match a.minutes {
        Some(m) => Duration::from_secs_f64(m * 60.0),
        None => Duration::from_secs_f64(a.frames as f64 / a.fps),
    };
    println!(
        "soak: {} streams × {} frames at {} frames/s through triton-proxy to shapes_nms, {:.0} s planned{}; {}; setup {:.1} s",
        a.streams,
        a.frames,
        a.fps,
        planned.as_secs_f64(),
        if a.minutes.is_some() {
            " (bounded by --minutes)"
        } else {
            ""
        },
        if a.graceful {
            "a rolling update: replica A stopped (SIGTERM) and started at 1/4, the proxy at 1/2, replica B at 3/4"
        } else {
            "Triton restarted at 1/4 and 3/4, the proxy at 1/2 (SIGKILL each)"
        },
        t0.elapsed().as_secs_f64()
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let st = Arc::new(Stats::default());
    let faults_over = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let rss = Arc::new(Mutex::new((0u64, 0u64, 0u64))); // start, peak, last
    let start = Instant::now();
    rt.block_on(async {
        // With --minutes the run stops sending then; without, when every stream sent its frames
        // (the time bound is only a backstop for a machine that cannot keep the rate).
        let stop = tokio::time::Instant::now()
            + match a.minutes {
                Some(_) => planned,
                None => planned * 4,
            };
        let cams: Vec<_> = (0..a.streams)
            .map(|s| {
                tokio::spawn(camera(
                    s,
                    url.clone(),
                    a.frames,
                    a.fps,
                    stop,
                    faults_over.clone(),
                    st.clone(),
                ))
            })
            .collect();
        // Proxy RSS every 500 ms, and progress every 15 s.
        let sampler = {
            let (proxy, rss, st) = (proxy.clone(), rss.clone(), st.clone());
            tokio::spawn(async move {
                let mut tick = 0u64;
                loop {
                    let now = proxy.lock().unwrap().rss_bytes();
                    if let Some(b) = now {
                        let mut r = rss.lock().unwrap();
                        if r.0 == 0 {
                            r.0 = b;
                        }
                        r.1 = r.1.max(b);
                        r.2 = b;
                    }
                    tick += 1;
                    if tick.is_multiple_of(30) {
                        println!(
                            "soak: {:>4.0} s: sent {}, ok {}, errors {}",
                            start.elapsed().as_secs_f64(),
                            st.sent.load(Ordering::Relaxed),
                            st.ok.load(Ordering::Relaxed),
                            st.errors.load(Ordering::Relaxed)
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
        };
        // The faults, on a blocking thread (restarts wait for readiness).
        let faults = {
            let (proxy, faults_over, graceful, st) =
                (proxy.clone(), faults_over.clone(), a.graceful, st.clone());
            tokio::task::spawn_blocking(move || {
                let at = |f: f64| start + planned.mul_f64(f);
                let wait =
                    |t: Instant| std::thread::sleep(t.saturating_duration_since(Instant::now()));
                let restart_triton = |triton: &mut Triton, name: &str| {
                    let t = Instant::now();
                    if graceful {
                        triton.terminate();
                        if triton.wait_stopped(Duration::from_secs(60)).is_none() {
                            fail(&format!("replica {name}: no exit within 60 s of SIGTERM"));
                        }
                    } else {
                        triton.kill();
                    }
                    let stopped = t.elapsed().as_secs_f64();
                    triton
                        .restart()
                        .unwrap_or_else(|e| fail(&format!("Triton restart: {e:#}")));
                    st.triton_away_ms
                        .fetch_add(t.elapsed().as_millis() as u64, Ordering::Relaxed);
                    println!(
                        "soak: Triton {name} {} at {:.0} s (exited after {stopped:.1} s, ready again after {:.1} s)",
                        if graceful { "stopped (SIGTERM) and restarted" } else { "killed and restarted" },
                        t.duration_since(start).as_secs_f64(),
                        t.elapsed().as_secs_f64()
                    );
                };
                let last = tritons.len() - 1;
                wait(at(0.25));
                restart_triton(&mut tritons[0], "A");
                wait(at(0.5));
                let t = Instant::now();
                let mut p = proxy.lock().unwrap();
                if graceful {
                    let exit = p.terminate();
                    if !exit.success() {
                        fail(&format!("the proxy's exit after SIGTERM: {exit}"));
                    }
                }
                p.restart();
                drop(p);
                println!(
                    "soak: proxy {} at {:.0} s (listening again after {:.1} s)",
                    if graceful { "stopped (SIGTERM) and restarted" } else { "killed and restarted" },
                    t.duration_since(start).as_secs_f64(),
                    t.elapsed().as_secs_f64()
                );
                wait(at(0.75));
                restart_triton(&mut tritons[last], if last == 0 { "A" } else { "B" });
                faults_over.store(true, Ordering::Relaxed);
                tritons
            })
        };
        for c in cams {
            c.await.unwrap();
        }
        sampler.abort();
        // Keep the Tritons alive until every camera is done; then they go with the process.
        let tritons = faults.await.unwrap();
        drop(tritons);
    });
    let _ = std::fs::remove_dir_all(&repo);
    let mut lat = std::mem::take(&mut *st.latencies_us.lock().unwrap());
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map(|us| *us as f64 / 1000.0)
            .unwrap_or(0.0)
    };
    let (r0, rpeak, rend) = *rss.lock().unwrap();
    let g = |v: &AtomicU64| v.load(Ordering::Relaxed);
    println!(
        "soak: ran {:.0} s; proxy RSS start {} MiB, peak {} MiB, end {} MiB",
        start.elapsed().as_secs_f64(),
        mib(r0),
        mib(rpeak),
        mib(rend)
    );
    println!(
        "soak: latency of ok Acks p50 {:.1} ms, p99 {:.1} ms; resent after broken streams {}; wrong answers {}; ok after the last fault {}",
        pct(0.5),
        pct(0.99),
        g(&st.resent),
        g(&st.wrong),
        g(&st.ok_after_faults)
    );
    println!(
        "soak: sent {}, ok {}, errors {}, lost {}, misordered {}",
        g(&st.sent),
        g(&st.ok),
        g(&st.errors),
        g(&st.lost),
        g(&st.misordered)
    );
    let answered = g(&st.ok) + g(&st.errors);
    // Error Acks come only while a Triton is away (crashes; a rolling update allows none): at
    // most what every stream sends in the time the replicas were away, plus 2 s per restart.
    let away = g(&st.triton_away_ms) as f64 / 1000.0;
    let allowed_errors = if a.graceful {
        0
    } else {
        ((away + 2.0 * 2.0) * a.streams as f64 * a.fps).ceil() as u64
    };
    println!(
        "soak: error Acks {} of at most {allowed_errors} ({}); stalls of 30 s {} (0 allowed); streams reopened {} of at most {} (one per stream for the proxy's restart)",
        g(&st.errors),
        if a.graceful {
            "0: a replica was always ready".to_string()
        } else {
            format!(
                "(Triton away {away:.1} s + 2 s × 2 restarts) × {} streams × {} f/s",
                a.streams, a.fps
            )
        },
        g(&st.stalls),
        g(&st.reconnects),
        a.streams
    );
    if g(&st.lost) > 0
        || g(&st.errors) > allowed_errors
        || g(&st.stalls) > 0
        || g(&st.reconnects) > a.streams as u64
        || g(&st.misordered) > 0
        || g(&st.wrong) > 0
        || g(&st.ok_after_faults) == 0
        || answered != g(&st.sent)
    {
        std::process::exit(1);
    }
}
