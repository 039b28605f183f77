//! Unit tests of the upstream pool: the TRITON_URL list, DNS expansion, balancing, ejection,
//! metrics.
use super::*;

fn settings() -> ChannelSettings {
    ChannelSettings {
        max_message_bytes: 1 << 20,
        keepalive: None,
        max_frame: 1 << 20,
        tls: None,
    }
}

#[test]
fn a_list_parses_with_and_without_schemes() {
    let l = parse_list(" triton-0:8001, http://10.0.0.2:8001 ,https://t.example:443").unwrap();
    assert_eq!(l.len(), 3);
    assert_eq!(l[0].url(&l[0].host), "http://triton-0:8001");
    assert_eq!(l[1].url(&l[1].host), "http://10.0.0.2:8001");
    assert_eq!(l[2].url(&l[2].host), "https://t.example:443");
    assert!(l[0].resolves());
    assert!(!l[1].resolves());
    assert!(!l[2].resolves(), "a TLS name stays a name");
    assert!(!parse_list("localhost:1").unwrap()[0].resolves());
    assert!(!parse_list("[::1]:1").unwrap()[0].resolves());
}

#[test]
fn a_bad_entry_is_named_with_its_position() {
    for (list, why) in [
        ("a:1,,b:2", "entry 2 '' is empty"),
        ("a:1,b", "entry 2 'b' has no port"),
        (
            "ftp://a:1",
            "entry 1 'ftp://a:1' has a scheme other than http or https",
        ),
        ("a:1,http://b:2/v2", "entry 2 'http://b:2/v2' has a path"),
        ("a:1, a:1", "entry 2 'a:1' is listed twice"),
        ("a b:1", "entry 1 'a b:1' is not an address"),
    ] {
        let e = parse_list(list).unwrap_err().to_string();
        assert!(e.starts_with(&format!("TRITON_URL: {why};")), "{list}: {e}");
        assert!(e.contains("expected host:port"), "{e}");
    }
}

#[tokio::test]
async fn two_choices_prefer_the_less_loaded_and_skip_ejected() {
    let pool = Pool::new("127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", settings())
        .await
        .unwrap();
    let m = pool.members();
    assert_eq!(m.len(), 3);
    // Two busy, one idle: the idle one wins every draw that includes it (2 of 3 pairs).
    let _busy: Vec<Lease> = (0..5).flat_map(|_| [m[0].lease(), m[1].lease()]).collect();
    let mut counts = [0usize; 3];
    for _ in 0..3000 {
        let u = pool.pick(None).unwrap();
        counts[m.iter().position(|x| Arc::ptr_eq(x, &u)).unwrap()] += 1;
    }
    assert!(counts[2] > 1700, "{counts:?}");
    assert!(counts[0] > 200 && counts[1] > 200, "{counts:?}");
    // Ejected ones are skipped while another is ready, and `except` is never picked.
    m[2].failed();
    for _ in 0..200 {
        let u = pool.pick(Some(&m[0])).unwrap();
        assert!(Arc::ptr_eq(&u, &m[1]));
    }
    // None ready: every one is a candidate again.
    m[0].failed();
    m[1].failed();
    let mut seen = [false; 3];
    for _ in 0..200 {
        let u = pool.pick(None).unwrap();
        seen[m.iter().position(|x| Arc::ptr_eq(x, &u)).unwrap()] = true;
    }
    assert_eq!(seen, [true; 3]);
    assert!(pool.pick(Some(&m[0])).is_some());
}

#[tokio::test]
async fn a_name_with_several_addresses_is_several_upstreams() {
    let e = &parse_list("triton-headless:8001").unwrap()[0];
    let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(
        expand(
            e,
            vec![
                v4("10.0.0.9"),
                v4("10.0.0.2"),
                v4("10.0.0.9"),
                v4("fd00::1")
            ]
        ),
        [
            "http://10.0.0.2:8001",
            "http://10.0.0.9:8001",
            "http://[fd00::1]:8001"
        ]
    );
    assert_eq!(
        expand(e, vec![v4("10.0.0.2")]),
        ["http://triton-headless:8001"]
    );
    assert_eq!(expand(e, vec![]), ["http://triton-headless:8001"]);
    // A re-resolution keeps the upstreams that stay (their connections and counters).
    assert_eq!(
        expand(e, vec![v4("10.0.0.9"), v4("10.0.0.2")]),
        ["http://10.0.0.2:8001", "http://10.0.0.9:8001"]
    );
    let pool = Pool::new("127.0.0.1:1", settings()).await.unwrap();
    let (added, gone) = pool
        .apply(vec![
            "http://10.0.0.2:8001".into(),
            "http://10.0.0.9:8001".into(),
        ])
        .unwrap();
    assert_eq!(added, ["http://10.0.0.2:8001", "http://10.0.0.9:8001"]);
    assert_eq!(gone, ["http://127.0.0.1:1"]);
    let before = pool.members();
    let _l = before[1].lease();
    let (added, gone) = pool
        .apply(vec![
            "http://10.0.0.9:8001".into(),
            "http://10.0.0.3:8001".into(),
        ])
        .unwrap();
    assert_eq!(added, ["http://10.0.0.3:8001"]);
    assert_eq!(gone, ["http://10.0.0.2:8001"]);
    let after = pool.members();
    assert_eq!(after.len(), 2);
    assert!(Arc::ptr_eq(&after[0], &before[1]));
    assert_eq!(after[1].url, "http://10.0.0.3:8001");
}

/// Waits (in paused time, letting the resolving task run) until the pool's URLs are `want`.
async fn urls_become(pool: &Pool, want: &[&str]) {
    let urls = || {
        pool.members()
            .iter()
            .map(|u| u.url.clone())
            .collect::<Vec<_>>()
    };
    for _ in 0..1000 {
        if urls() == want {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("upstreams {:?}, expected {want:?}", urls());
}

#[tokio::test(start_paused = true)]
async fn names_are_resolved_again_every_interval_two_then_one_then_two_addresses() {
    let answer: Arc<std::sync::Mutex<Vec<&str>>> =
        Arc::new(std::sync::Mutex::new(vec!["10.0.0.9", "10.0.0.2"]));
    let a = answer.clone();
    let asked = Arc::new(AtomicU64::new(0));
    let n = asked.clone();
    let resolver: Resolver = Arc::new(move |host, port| {
        assert_eq!((host.as_str(), port), ("triton-headless", 8001));
        n.fetch_add(1, Ordering::SeqCst);
        let r: std::io::Result<Vec<IpAddr>> = match a.lock().unwrap().as_slice() {
            ["fail"] => Err(std::io::Error::other("SERVFAIL")),
            ips => Ok(ips.iter().map(|s| s.parse().unwrap()).collect()),
        };
        Box::pin(async move { r })
    });
    let pool = Pool::with_resolver("triton-headless:8001,127.0.0.1:9", settings(), resolver)
        .await
        .unwrap();
    let two = [
        "http://10.0.0.2:8001",
        "http://10.0.0.9:8001",
        "http://127.0.0.1:9",
    ];
    urls_become(&pool, &two).await;
    let stays = pool.members()[1].clone();
    let every = Duration::from_secs(30);
    let task = tokio::spawn(keep_resolving(pool.clone(), Some(every)));
    // Let the task start its first wait before time moves.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    // 2 → 1: the name is one upstream again (its channel resolves it), not before the interval.
    *answer.lock().unwrap() = vec!["10.0.0.9"];
    tokio::time::advance(every - Duration::from_secs(1)).await;
    urls_become(&pool, &two).await;
    assert_eq!(
        asked.load(Ordering::SeqCst),
        1,
        "asked again before the interval"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    urls_become(
        &pool,
        &["http://triton-headless:8001", "http://127.0.0.1:9"],
    )
    .await;
    // 1 → 2: one known address comes back, one is new.
    *answer.lock().unwrap() = vec!["10.0.0.9", "10.0.0.3"];
    tokio::time::advance(every).await;
    urls_become(
        &pool,
        &[
            "http://10.0.0.3:8001",
            "http://10.0.0.9:8001",
            "http://127.0.0.1:9",
        ],
    )
    .await;
    assert_ne!(
        Arc::as_ptr(&pool.members()[1]),
        Arc::as_ptr(&stays),
        "an upstream that left was made anew"
    );
    // A failed lookup leaves the name as one upstream by name (its channel resolves it later).
    *answer.lock().unwrap() = vec!["fail"];
    tokio::time::advance(every).await;
    urls_become(
        &pool,
        &["http://triton-headless:8001", "http://127.0.0.1:9"],
    )
    .await;
    assert_eq!(asked.load(Ordering::SeqCst), 4);
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_list_of_addresses_only_is_never_resolved_again() {
    let resolver: Resolver = Arc::new(|host, _| panic!("{host} looked up"));
    let pool = Pool::with_resolver("127.0.0.1:1,[::1]:2", settings(), resolver)
        .await
        .unwrap();
    // Returns at once: nothing to resolve.
    keep_resolving(pool.clone(), Some(Duration::from_secs(1))).await;
    keep_resolving(pool, None).await;
}

#[tokio::test]
async fn equal_load_spreads_evenly() {
    let pool = Pool::new("127.0.0.1:1,127.0.0.1:2", settings())
        .await
        .unwrap();
    let m = pool.members();
    let mut first = 0;
    for _ in 0..2000 {
        if Arc::ptr_eq(&pool.pick(None).unwrap(), &m[0]) {
            first += 1;
        }
    }
    assert!((800..1200).contains(&first), "{first} of 2000");
    // One of two busy: both are drawn every time, so the idle one always wins.
    let busy = m[0].lease();
    for _ in 0..500 {
        assert!(Arc::ptr_eq(&pool.pick(None).unwrap(), &m[1]));
    }
    drop(busy);
    let mut first = 0;
    for _ in 0..2000 {
        if Arc::ptr_eq(&pool.pick(None).unwrap(), &m[0]) {
            first += 1;
        }
    }
    assert!(
        (800..1200).contains(&first),
        "after the lease ended: {first} of 2000"
    );
    assert_eq!(pool.addresses(), "http://127.0.0.1:1,http://127.0.0.1:2");

    let one = Pool::new("127.0.0.1:1", settings()).await.unwrap();
    let only = one.members()[0].clone();
    assert!(one.pick(Some(&only)).is_none());
    let _lease = only.lease();
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::with_upstreams(one.clone()));
    let text = metrics.render();
    assert!(text.contains("proxy_upstream_outstanding{upstream=\"http://127.0.0.1:1\"} 1"));
    assert!(text.contains("proxy_upstream_requests_total{upstream=\"http://127.0.0.1:1\"} 1"));
    assert!(text.contains("proxy_upstream_ready{upstream=\"http://127.0.0.1:1\"} 1"));
    only.failed();
    let text = metrics.render();
    assert!(text.contains("proxy_upstream_ready{upstream=\"http://127.0.0.1:1\"} 0"));
    assert!(text.contains("proxy_upstream_failures_total{upstream=\"http://127.0.0.1:1\"} 1"));
    only.set_ready(true);
    assert!(only.is_ready());
    only.set_ready(false);
    assert!(!only.is_ready());
}

#[tokio::test]
async fn a_probe_of_servers_that_do_not_answer_ejects_them() {
    let pool = Pool::new("127.0.0.1:1,127.0.0.1:2", settings())
        .await
        .unwrap();
    assert!(pool.members().iter().all(|u| u.is_ready()));
    assert!(!pool.probe().await);
    assert!(pool.members().iter().all(|u| !u.is_ready()));
}

/// Upstreams that answer `ServerReady` as scripted: a probe marks each as it answers and says
/// whether any is ready; a confirmation ejects one that is not ready and counts a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_confirmations_follow_what_each_server_answers() {
    use triton_client::mock::{MockKserve, Script};
    let script = |not_ready| Script {
        not_ready,
        ..Default::default()
    };
    let a = MockKserve::start(script(false));
    let b = MockKserve::start(script(true));
    let pool = Pool::new(&format!("{},{}", a.url(), b.url()), settings())
        .await
        .unwrap();
    let m = pool.members();
    let ready = || m.iter().map(|u| u.is_ready()).collect::<Vec<_>>();
    assert!(pool.probe().await, "A is ready, so the pool is");
    assert_eq!(ready(), [true, false]);
    b.set_script(script(false));
    assert!(pool.probe().await);
    assert_eq!(ready(), [true, true], "B came back");
    a.set_script(script(true));
    b.set_script(script(true));
    assert!(!pool.probe().await, "no upstream is ready");
    assert_eq!(ready(), [false, false]);

    a.set_script(script(false));
    assert!(m[0].confirm_ready().await, "A answers ready");
    let failures = m[1].failures.load(Ordering::Relaxed);
    assert!(!m[1].confirm_ready().await);
    assert!(!m[1].is_ready());
    assert_eq!(m[1].failures.load(Ordering::Relaxed), failures + 1);
    // A ready server slow to say so (busy) is not ejected by a confirmation: it stays in, its
    // error answer goes to the client as it is, and the probe judges it later.
    a.set_script(Script {
        ready_delay_ms: 1500,
        ..Default::default()
    });
    m[0].set_ready(true);
    let failures = m[0].failures.load(Ordering::Relaxed);
    assert!(
        m[0].confirm_ready().await,
        "a slow ServerReady is no ejection"
    );
    assert!(m[0].is_ready());
    assert_eq!(m[0].failures.load(Ordering::Relaxed), failures);
    // A server that cannot be reached at all is not ready.
    b.kill();
    assert!(!m[1].confirm_ready().await);
}
