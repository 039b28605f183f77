//! Batch collation (`PROXY_BATCH_MAX` > 1), for models whose server has no batcher: requests for
//! the same model, version, inputs (names, datatypes, shapes with a first dimension of 1) and
//! outputs, from any stream, wait at most `PROXY_BATCH_DELAY_US` to be stacked into one
//! `[N, …]` request; the answer is split back along the first dimension, one part per packet.
//! Each stream still gets its Acks in its own order (a packet waits for its part like for its own
//! answer). Packets with request parameters go alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;
use tonic::{Code, Status};
use triton_proto::inference::{ModelInferRequest, ModelInferResponse};

use crate::metrics::Metrics;
use crate::upstream::Pool;

type Answer = Result<ModelInferResponse, Status>;

/// The collation key of a request, or `None` when it cannot be stacked (an input without a
/// leading 1, or request parameters).
pub fn key(req: &ModelInferRequest) -> Option<String> {
    if !req.parameters.is_empty()
        || req.inputs.is_empty()
        || req.inputs.len() != req.raw_input_contents.len()
        || req.inputs.iter().any(|i| i.shape.first() != Some(&1))
    {
        return None;
    }
    let mut k = format!("{}\0{}", req.model_name, req.model_version);
    for i in &req.inputs {
        k.push_str(&format!("\0{}:{}:{:?}", i.name, i.datatype, i.shape));
    }
    for o in &req.outputs {
        k.push_str(&format!("\0>{}", o.name));
    }
    Some(k)
}

struct Waiting {
    generation: u64,
    template: ModelInferRequest,
    timeout_secs: f64,
    items: Vec<(Vec<Bytes>, oneshot::Sender<Answer>)>,
}

/// The collator: one open batch per key.
pub struct Batcher {
    max: usize,
    delay: Duration,
    pool: Arc<Pool>,
    metrics: Arc<Metrics>,
    open: Mutex<HashMap<String, Waiting>>,
    generation: AtomicU64,
}

impl Batcher {
    pub fn new(max: usize, delay: Duration, pool: Arc<Pool>, metrics: Arc<Metrics>) -> Batcher {
        Batcher {
            max,
            delay,
            pool,
            metrics,
            open: Mutex::default(),
            generation: AtomicU64::new(0),
        }
    }

    /// Adds a request (whose [`key`] is `key`) to its batch and waits for its part of the answer.
    pub async fn submit(
        self: &Arc<Self>,
        key: String,
        mut req: ModelInferRequest,
        timeout_secs: f64,
    ) -> Answer {
        let (tx, rx) = oneshot::channel();
        let raw = std::mem::take(&mut req.raw_input_contents);
        let (full, started) = {
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            let w = open.entry(key.clone()).or_insert_with(|| Waiting {
                generation: self.generation.fetch_add(1, Ordering::Relaxed),
                template: req,
                timeout_secs,
                items: Vec::with_capacity(self.max),
            });
            // The batch may take as long as its most patient member; each member still waits
            // only its own timeout (below), so a tiny one fails nobody else.
            w.timeout_secs = w.timeout_secs.max(timeout_secs);
            w.items.push((raw, tx));
            let started = (w.items.len() == 1).then_some(w.generation);
            let full = if w.items.len() >= self.max {
                open.remove(&key)
            } else {
                None
            };
            (full, started)
        };
        if let Some(w) = full {
            tokio::spawn(self.clone().run(w));
        } else if let Some(generation) = started {
            // The first packet of a batch starts its clock: at the delay it goes, full or not.
            let me = self.clone();
            tokio::spawn(async move {
                tokio::time::sleep(me.delay).await;
                let w = {
                    let mut open = me.open.lock().unwrap_or_else(|e| e.into_inner());
                    match open.get(&key) {
                        Some(w) if w.generation == generation => open.remove(&key),
                        _ => None,
                    }
                };
                if let Some(w) = w {
                    me.run(w).await;
                }
            });
        }
        let own = Duration::try_from_secs_f64(timeout_secs).unwrap_or(Duration::MAX);
        match tokio::time::timeout(own, rx).await {
            Ok(answer) => answer
                .unwrap_or_else(|_| Err(Status::internal("the batch of this packet was dropped"))),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "timeout: Triton did not answer within {timeout_secs} s; expected a larger \
                 'timeout'"
            ))),
        }
    }

    /// Sends one batch and hands each packet its part.
    async fn run(self: Arc<Self>, w: Waiting) {
        let n = w.items.len();
        self.metrics.batches.fetch_add(1, Ordering::Relaxed);
        self.metrics
            .batched_packets
            .fetch_add(n as u64, Ordering::Relaxed);
        let (raws, txs): (Vec<_>, Vec<_>) = w.items.into_iter().unzip();
        let req = stack(w.template.clone(), raws.clone(), w.generation);
        let infer = crate::grpc::infer::Infer::from_request(req);
        let answer = crate::forward::forward(&self.pool, infer, w.timeout_secs).await;
        // Splitting slices each tensor by packet: join the tensor's pieces first.
        let parts = answer
            .and_then(|r| split(r.into_response(), n))
            .map_err(|s| explain(s, n));
        match parts {
            Ok(parts) => {
                for (tx, part) in txs.into_iter().zip(parts) {
                    let _ = tx.send(Ok(part));
                }
            }
            // Refused as a batch (one member's bytes, or a model that takes no batch): each
            // member goes alone, so that only the one at fault gets the error.
            Err(s) if n > 1 && isolates(&s) => {
                self.metrics.batches_split.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    error = %s.message(),
                    packets = n,
                    "a batch was refused; its packets go alone (proxy_batches_split_total)"
                );
                let alone = txs.into_iter().zip(raws).map(|(tx, raw)| {
                    let req = stack(w.template.clone(), vec![raw], w.generation);
                    let (pool, secs) = (self.pool.clone(), w.timeout_secs);
                    async move {
                        let infer = crate::grpc::infer::Infer::from_request(req);
                        let answer = crate::forward::forward(&pool, infer, secs).await;
                        let _ = tx.send(answer.map(|r| r.into_response()));
                    }
                });
                futures::future::join_all(alone).await;
            }
            Err(s) => {
                for tx in txs {
                    let _ = tx.send(Err(s.clone()));
                }
            }
        }
    }
}

/// Whether a batch's failure may be one member's doing, worth sending each alone: not when
/// Triton is unreachable, overloaded or out of time (alone would fail the same way, twice).
fn isolates(s: &Status) -> bool {
    !matches!(
        s.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Cancelled
    )
}

/// A refused batch: when Triton found the stacked request invalid, say that it was stacked.
fn explain(s: Status, n: usize) -> Status {
    if n > 1 && s.code() == Code::InvalidArgument {
        Status::invalid_argument(format!(
            "{} (PROXY_BATCH_MAX stacked {n} packets into one request: the model must take a \
             batch of {n}, e.g. Triton's max_batch_size >= {n})",
            s.message()
        ))
    } else {
        s
    }
}

/// One request for a batch: each input's bytes concatenated, its first dimension = the count.
fn stack(
    mut template: ModelInferRequest,
    raws: Vec<Vec<Bytes>>,
    generation: u64,
) -> ModelInferRequest {
    let n = raws.len();
    template.id = format!("batch-{generation}");
    if n == 1 {
        template.raw_input_contents = raws.into_iter().next().unwrap_or_default();
        return template;
    }
    template.raw_input_contents = (0..template.inputs.len())
        .map(|i| {
            let mut b = BytesMut::with_capacity(raws.iter().map(|r| r[i].len()).sum());
            for r in &raws {
                b.extend_from_slice(&r[i]);
            }
            b.freeze()
        })
        .collect();
    for input in &mut template.inputs {
        input.shape[0] = n as i64;
    }
    template
}

/// The answer of a batch of `n`, split along the first dimension of every output.
fn split(resp: ModelInferResponse, n: usize) -> Result<Vec<ModelInferResponse>, Status> {
    if resp.raw_output_contents.len() != resp.outputs.len() {
        return Err(Status::internal(format!(
            "Triton answered {} outputs with {} raw buffers",
            resp.outputs.len(),
            resp.raw_output_contents.len()
        )));
    }
    let mut parts: Vec<ModelInferResponse> = (0..n)
        .map(|_| ModelInferResponse {
            model_name: resp.model_name.clone(),
            model_version: resp.model_version.clone(),
            ..Default::default()
        })
        .collect();
    for (o, raw) in resp.outputs.iter().zip(&resp.raw_output_contents) {
        if o.shape.first() != Some(&(n as i64)) {
            return Err(Status::internal(format!(
                "PROXY_BATCH_MAX: output '{}' has shape {:?}; expected a first dimension of {n} \
                 (the batch)",
                o.name, o.shape
            )));
        }
        let chunks = if o.datatype == "BYTES" {
            // Elements per member, from a server-sent shape: checked (a hostile shape must not
            // overflow); split_bytes stops at the first element the bytes do not hold.
            o.shape[1..]
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(usize::try_from(d).ok()?))
                .and_then(|per| split_bytes(raw, n, per))
        } else if raw.len() % n == 0 {
            Some(
                (0..n)
                    .map(|i| raw.slice(i * raw.len() / n..(i + 1) * raw.len() / n))
                    .collect(),
            )
        } else {
            None
        }
        .ok_or_else(|| {
            Status::internal(format!(
                "PROXY_BATCH_MAX: output '{}' ({} bytes) does not split into {n} equal parts",
                o.name,
                raw.len()
            ))
        })?;
        for (part, chunk) in parts.iter_mut().zip(chunks) {
            let mut meta = o.clone();
            meta.shape[0] = 1;
            part.outputs.push(meta);
            part.raw_output_contents.push(chunk);
        }
    }
    Ok(parts)
}

/// `BYTES` elements (each a 4-byte little-endian length and its bytes), `per` to a part.
fn split_bytes(raw: &Bytes, n: usize, per: usize) -> Option<Vec<Bytes>> {
    let mut out = Vec::with_capacity(n);
    let mut at = 0usize;
    for _ in 0..n {
        let start = at;
        for _ in 0..per {
            let len = u32::from_le_bytes(raw.get(at..at + 4)?.try_into().ok()?) as usize;
            at = at.checked_add(4 + len).filter(|&e| e <= raw.len())?;
        }
        out.push(raw.slice(start..at));
    }
    (at == raw.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use triton_proto::inference::model_infer_request::InferInputTensor;
    use triton_proto::inference::model_infer_response::InferOutputTensor;

    fn request(shape: Vec<i64>, data: &[u8]) -> ModelInferRequest {
        ModelInferRequest {
            model_name: "m".into(),
            inputs: vec![InferInputTensor {
                name: "images".into(),
                datatype: "UINT8".into(),
                shape,
                ..Default::default()
            }],
            raw_input_contents: vec![Bytes::copy_from_slice(data)],
            ..Default::default()
        }
    }

    #[test]
    fn only_a_leading_one_without_parameters_is_stacked() {
        let a = key(&request(vec![1, 3, 2, 2], &[0; 12])).unwrap();
        assert_eq!(key(&request(vec![1, 3, 2, 2], &[1; 12])), Some(a.clone()));
        assert_ne!(key(&request(vec![1, 3, 4, 1], &[0; 12])), Some(a.clone()));
        assert_eq!(key(&request(vec![2, 3, 2, 2], &[0; 24])), None);
        assert_eq!(key(&request(vec![], &[0])), None);
        let mut p = request(vec![1, 3, 2, 2], &[0; 12]);
        p.parameters.insert("delay_ms".into(), Default::default());
        assert_eq!(key(&p), None);
        let mut other = request(vec![1, 3, 2, 2], &[0; 12]);
        other.model_name = "n".into();
        assert_ne!(key(&other), Some(a));
        let mut no_bytes = request(vec![1, 3, 2, 2], &[0; 12]);
        no_bytes.raw_input_contents.clear();
        assert_eq!(
            key(&no_bytes),
            None,
            "the tensor is not in raw_input_contents"
        );
    }

    #[test]
    fn only_a_refusal_sends_a_batch_again_member_by_member() {
        for code in [
            Code::InvalidArgument,
            Code::Internal,
            Code::NotFound,
            Code::Unknown,
        ] {
            assert!(isolates(&Status::new(code, "x")), "{code:?}");
        }
        for code in [
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::ResourceExhausted,
            Code::Cancelled,
        ] {
            assert!(!isolates(&Status::new(code, "x")), "{code:?}");
        }
    }

    #[test]
    fn a_refused_batch_says_it_was_stacked() {
        let e = explain(Status::invalid_argument("unexpected shape"), 4);
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(
            e.message()
                .starts_with("unexpected shape (PROXY_BATCH_MAX stacked 4"),
            "{e:?}"
        );
        assert!(e.message().contains("max_batch_size >= 4"), "{e:?}");
        let alone = explain(Status::invalid_argument("unexpected shape"), 1);
        assert_eq!(alone.message(), "unexpected shape");
        let other = explain(Status::unavailable("down"), 4);
        assert_eq!(other.message(), "down");
    }

    /// A collator in front of a server that does not answer: every packet gets UNAVAILABLE, and
    /// the metrics tell how the packets were grouped.
    async fn collator(max: usize, delay_ms: u64) -> (Arc<Batcher>, Arc<Metrics>) {
        let pool = Pool::new(
            "127.0.0.1:1",
            crate::upstream::ChannelSettings {
                max_message_bytes: 1 << 20,
                keepalive: None,
                max_frame: 1 << 20,
                tls: None,
            },
        )
        .await
        .unwrap();
        let metrics = Arc::new(Metrics::default());
        let b = Batcher::new(max, Duration::from_millis(delay_ms), pool, metrics.clone());
        (Arc::new(b), metrics)
    }

    async fn send(b: &Arc<Batcher>) -> (Status, Duration) {
        let t0 = std::time::Instant::now();
        let r = request(vec![1, 2], &[1, 2]);
        let k = key(&r).unwrap();
        let s = tokio::time::timeout(Duration::from_secs(10), b.submit(k, r, 5.0))
            .await
            .expect("an answer")
            .unwrap_err();
        (s, t0.elapsed())
    }

    /// A batch the server refuses for one member's bytes (the mock refuses any tensor holding
    /// 0xEE) is sent again member by member: the others get their own answers, only that one
    /// the error. A lone packet the server refuses is not sent twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_batch_is_sent_again_member_by_member() {
        use std::sync::atomic::Ordering::Relaxed;
        use triton_client::mock::{MockKserve, Script};
        let mock = MockKserve::start(Script {
            echo: true,
            refuse: Box::new(|d: &[u8]| d.contains(&0xEE).then(|| "bad bytes".to_string())),
            ..Default::default()
        });
        let settings = crate::upstream::ChannelSettings {
            max_message_bytes: 1 << 20,
            keepalive: None,
            max_frame: 1 << 20,
            tls: None,
        };
        let pool = Pool::new(&mock.url(), settings).await.unwrap();
        let metrics = Arc::new(Metrics::default());
        let b = Arc::new(Batcher::new(
            3,
            Duration::from_millis(300),
            pool,
            metrics.clone(),
        ));
        let send = |data: [u8; 2]| {
            let r = request(vec![1, 2], &data);
            let k = key(&r).unwrap();
            b.submit(k, r, 5.0)
        };
        let (a, bad, c) = tokio::join!(send([1, 2]), send([0xEE, 2]), send([3, 4]));
        assert_eq!(a.unwrap().raw_output_contents[0][..], [1, 2]);
        assert_eq!(c.unwrap().raw_output_contents[0][..], [3, 4]);
        assert!(bad.unwrap_err().message().contains("bad bytes"));
        assert_eq!(metrics.batches_split.load(Relaxed), 1);
        assert_eq!(
            mock.received(),
            4,
            "one batch, then each of its three alone"
        );
        let lone = send([0xEE, 0xEE]).await;
        assert!(lone.unwrap_err().message().contains("bad bytes"));
        assert_eq!(
            metrics.batches_split.load(Relaxed),
            1,
            "a batch of one is not split"
        );
        assert_eq!(mock.received(), 5, "a lone refused packet is sent once");
    }

    #[tokio::test]
    async fn a_full_batch_goes_at_once_and_a_lone_packet_at_the_delay() {
        use std::sync::atomic::Ordering::Relaxed;
        // Three packets fill a batch of 3: one request, long before the 10 s delay.
        let (b, m) = collator(3, 10_000).await;
        let all = futures::future::join_all((0..3).map(|_| send(&b))).await;
        for (s, took) in &all {
            assert_eq!(s.code(), Code::Unavailable, "{s:?}");
            assert!(*took < Duration::from_secs(5), "{took:?}");
        }
        assert_eq!(
            (m.batches.load(Relaxed), m.batched_packets.load(Relaxed)),
            (1, 3)
        );
        assert_eq!(
            m.batches_split.load(Relaxed),
            0,
            "an unreachable server is not asked again packet by packet"
        );
        // One packet alone goes when its delay ends.
        let (b, m) = collator(8, 200).await;
        let (s, took) = send(&b).await;
        assert_eq!(s.code(), Code::Unavailable, "{s:?}");
        assert!(took >= Duration::from_millis(200), "{took:?}");
        assert_eq!(
            (m.batches.load(Relaxed), m.batched_packets.load(Relaxed)),
            (1, 1)
        );
    }

    #[tokio::test]
    async fn the_clock_of_a_sent_batch_never_cuts_the_next_one_short() {
        // A and B fill a batch at once; its clock still runs out at 1 s. C, sent at about
        // 400 ms, starts a batch of its own and must wait its own full second.
        let (b, m) = collator(2, 1000).await;
        let (ab, c) = tokio::join!(futures::future::join(send(&b), send(&b)), async {
            tokio::time::sleep(Duration::from_millis(400)).await;
            send(&b).await
        });
        assert!(ab.0.1 < Duration::from_millis(1000), "{:?}", ab.0.1);
        assert!(c.1 >= Duration::from_millis(1000), "C went after {:?}", c.1);
        assert_eq!(m.batches.load(std::sync::atomic::Ordering::Relaxed), 2);
    }

    #[test]
    fn stacking_concatenates_in_order_and_sets_the_count() {
        let t = request(vec![1, 2], &[]);
        let raws = vec![
            vec![Bytes::from_static(&[1, 2])],
            vec![Bytes::from_static(&[3, 4])],
            vec![Bytes::from_static(&[5, 6])],
        ];
        let r = stack(t.clone(), raws, 7);
        assert_eq!(r.inputs[0].shape, [3, 2]);
        assert_eq!(&r.raw_input_contents[0][..], [1, 2, 3, 4, 5, 6]);
        assert_eq!(r.id, "batch-7");
        let one = stack(t, vec![vec![Bytes::from_static(&[9, 9])]], 8);
        assert_eq!(one.inputs[0].shape, [1, 2]);
        assert_eq!(&one.raw_input_contents[0][..], [9, 9]);
    }

    #[test]
    fn an_answer_splits_back_along_the_first_dimension() {
        let out = |name: &str, dt: &str, shape: Vec<i64>| InferOutputTensor {
            name: name.into(),
            datatype: dt.into(),
            shape,
            ..Default::default()
        };
        let bytes_elem = |s: &[u8]| [&(s.len() as u32).to_le_bytes()[..], s].concat();
        let resp = ModelInferResponse {
            model_name: "m".into(),
            model_version: "1".into(),
            outputs: vec![out("o", "INT16", vec![2, 2]), out("s", "BYTES", vec![2, 1])],
            raw_output_contents: vec![
                Bytes::from_static(&[1, 0, 2, 0, 3, 0, 4, 0]),
                [bytes_elem(b"a"), bytes_elem(b"bcd")].concat().into(),
            ],
            ..Default::default()
        };
        let parts = split(resp.clone(), 2).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].outputs[0].shape, [1, 2]);
        assert_eq!(&parts[0].raw_output_contents[0][..], [1, 0, 2, 0]);
        assert_eq!(&parts[1].raw_output_contents[0][..], [3, 0, 4, 0]);
        assert_eq!(&parts[0].raw_output_contents[1][..], bytes_elem(b"a"));
        assert_eq!(&parts[1].raw_output_contents[1][..], bytes_elem(b"bcd"));
        assert_eq!(parts[1].model_version, "1");
        assert_eq!(parts[1].model_name, "m");
        let e = split(resp.clone(), 3).unwrap_err();
        assert!(
            e.message().contains("expected a first dimension of 3"),
            "{e:?}"
        );
        let mut odd = resp.clone();
        odd.outputs[0].shape = vec![3, 1];
        odd.raw_output_contents[0] = Bytes::from_static(&[0; 7]);
        odd.outputs.truncate(1);
        odd.raw_output_contents.truncate(1);
        let e = split(odd, 3).unwrap_err();
        assert!(
            e.message().contains("does not split into 3 equal parts"),
            "{e:?}"
        );
        assert_eq!(
            split_bytes(&Bytes::from_static(&[9, 0, 0, 0, 1]), 1, 1),
            None
        );
        // A server-sent BYTES shape whose element count overflows, or is past the bytes, or is
        // negative: refused with the same error, never a panic (it overflowed i64 before).
        // Empty elements: 4 bytes each, the most elements the bytes can hold.
        let mut empty = resp.clone();
        empty.outputs[1].shape = vec![2, 2];
        empty.raw_output_contents[1] = bytes_elem(b"").repeat(4).into();
        let parts = split(empty, 2).unwrap();
        assert_eq!(parts[1].raw_output_contents[1].len(), 8);
        for shape in [vec![2, 1 << 40, 1 << 40], vec![2, i64::MAX], vec![2, -1]] {
            let mut hostile = resp.clone();
            hostile.outputs[1].shape = shape.clone();
            let e = split(hostile, 2).unwrap_err();
            assert!(e.message().contains("does not split"), "{shape:?}: {e:?}");
        }
    }
}
