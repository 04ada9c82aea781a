//! Operations (issue 14): Prometheus metrics on their own plain-HTTP address, parsed by a
//! strict reader of the text format; `X-Request-Id` on every answer; `/ready` against
//! `/health` when storage stops answering.
mod common;
use common::*;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn free_port() -> u16 {
    free_addr().port()
}

// ---------------------------------------------------------------------------------------
// A strict reader of the Prometheus text format (version 0.0.4).

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(text: &str) -> f64 {
    match text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => text
            .parse()
            .unwrap_or_else(|_| panic!("not a sample value: {text:?}")),
    }
}

/// `name="value",...}` after the opening brace; answers the labels and the rest.
fn parse_labels(mut rest: &str) -> (BTreeMap<String, String>, &str) {
    let mut labels = BTreeMap::new();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        let eq = rest.find('=').expect("a label has =");
        let name = &rest[..eq];
        assert!(is_label_name(name), "label name {name:?}");
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .expect("a quoted label value");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next().expect("an unterminated label value") {
                (i, '"') => break i,
                (_, '\\') => match chars.next().expect("an escape").1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    c => panic!("unknown escape \\{c}"),
                },
                (_, '\n') => panic!("a raw line feed in a label value"),
                (_, c) => value.push(c),
            }
        };
        assert!(
            labels.insert(name.to_owned(), value).is_none(),
            "label {name} twice"
        );
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// Parses the whole exposition, checking HELP and TYPE lines, names, label syntax and
/// values, and that every histogram's buckets are cumulative and end in `+Inf` =
/// `_count`.
fn parse_metrics(text: &str) -> Vec<Sample> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert!(is_metric_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                !samples.iter().any(|s: &Sample| family(s, &types) == name),
                "TYPE after samples: {line}"
            );
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "two TYPE lines for {name}"
            );
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(is_metric_name(name), "{line}");
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).expect("a sample has a value");
        let name = &line[..name_end];
        assert!(is_metric_name(name), "sample name in {line:?}");
        let (labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(rest) => parse_labels(rest),
            None => (BTreeMap::new(), &line[name_end..]),
        };
        let rest = rest.strip_prefix(' ').expect("a space before the value");
        let mut fields = rest.split(' ');
        let value = parse_value(fields.next().unwrap());
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().expect("a timestamp");
        }
        assert!(fields.next().is_none(), "trailing text in {line:?}");
        let sample = Sample {
            name: name.to_owned(),
            labels,
            value,
        };
        let fam = family(&sample, &types);
        let kind = types
            .get(&fam)
            .unwrap_or_else(|| panic!("no TYPE for {line:?}"));
        match kind.as_str() {
            "counter" => {
                assert!(name.ends_with("_total"), "counter {name}");
                assert!(value >= 0.0, "{line}");
            }
            "histogram" if name.ends_with("_bucket") => {
                assert!(sample.labels.contains_key("le"), "{line}")
            }
            _ => {}
        }
        samples.push(sample);
    }
    check_histograms(&samples, &types);
    samples
}

/// The family a sample belongs to: its name, or a histogram's name for its parts.
fn family(s: &Sample, types: &HashMap<String, String>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = s.name.strip_suffix(suffix) {
            if types.get(base).is_some_and(|t| t == "histogram") {
                return base.to_owned();
            }
        }
    }
    s.name.clone()
}

fn check_histograms(samples: &[Sample], types: &HashMap<String, String>) {
    for (name, _) in types.iter().filter(|(_, t)| *t == "histogram") {
        let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for s in samples
            .iter()
            .filter(|s| s.name == format!("{name}_bucket"))
        {
            let mut key = s.labels.clone();
            let le = parse_value(&key.remove("le").unwrap());
            series.entry(key).or_default().push((le, s.value));
        }
        for (labels, buckets) in series {
            let mut last = (f64::NEG_INFINITY, 0.0);
            for &(le, n) in &buckets {
                assert!(le > last.0, "{name} {labels:?}: bounds in order");
                assert!(n >= last.1, "{name} {labels:?}: cumulative");
                last = (le, n);
            }
            assert_eq!(last.0, f64::INFINITY, "{name} {labels:?} ends in +Inf");
            let count = samples
                .iter()
                .find(|s| s.name == format!("{name}_count") && s.labels == labels)
                .unwrap_or_else(|| panic!("{name}_count {labels:?}"));
            assert_eq!(count.value, last.1, "{name} {labels:?}: +Inf = count");
            assert!(
                samples
                    .iter()
                    .any(|s| s.name == format!("{name}_sum") && s.labels == labels),
                "{name}_sum {labels:?}"
            );
        }
    }
}

/// The value of the series with exactly these labels.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

async fn scrape(addr: SocketAddr) -> Vec<Sample> {
    let r = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    parse_metrics(&r.text().await.unwrap())
}

fn requests(samples: &[Sample], service: &str, method: &str, status: &str) -> f64 {
    value(
        samples,
        "vesper_requests_total",
        &[("service", service), ("method", method), ("status", status)],
    )
    .unwrap_or(0.0)
}

#[test]
fn the_reader_refuses_what_the_format_does_not_allow() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\"} 3\n\
                # TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n";
    let samples = parse_metrics(good);
    assert_eq!(samples[0].labels["x"], "q\"\\");
    assert_eq!(value(&samples, "h_count", &[]), Some(2.0));
    for bad in [
        "a_total 1\n",                                                       // no TYPE
        "# TYPE a_total counter\na_total{x=\"1} 1\n",                        // unterminated
        "# TYPE a_total counter\na_total{1x=\"1\"} 1\n",                     // label name
        "# TYPE a_total counter\na_total one\n",                             // value
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 1\n", // +Inf != count
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 3\nh_count 1\n",
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_metrics(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Metrics.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_queued_mail_and_stored_bytes_and_name_no_person_nor_object() {
    let metrics = free_addr();
    // Mail to an SMTP port nobody listens on stays queued, retried with backoff.
    let smtp = format!("smtp://127.0.0.1:{}", free_port());
    let s = TestServer::start_with(|c| {
        c.metrics_listen = Some(metrics);
        c.smtp_url = Some(smtp);
    })
    .await;
    let before = scrape(metrics).await;
    let member_email = "metrics-member@example.com";
    let (member, member_sid) = s.user(member_email, 100, true).await;
    let admin = s.admin().await;
    let caller = s.as_caller(&admin);
    let project = caller
        .add(
            Kind::Project,
            &[("name", "Lighthouse"), ("team", &member.to_string())],
        )
        .await;
    caller.get(Kind::Project, project).await;
    caller.get(Kind::Project, project).await;
    let missing = project + 1000;
    caller
        .get_answer(Kind::Project, missing)
        .await
        .assert_fail(404, "not_found");
    s.call_json("projects/noSuchMethod", &[("sessionId", &admin)])
        .await
        .assert_fail(404, "unknown_method");
    let page = s.client.get(s.https("/signin")).send().await.unwrap();
    assert_eq!(page.status(), 200);

    let after_calls = scrape(metrics).await;
    let moved = |service, method, status| {
        requests(&after_calls, service, method, status) - requests(&before, service, method, status)
    };
    assert!(moved("projects", "getById", "200") >= 2.0);
    assert!(moved("projects", "getById", "404") >= 1.0);
    assert!(moved("projects", "add", "200") >= 1.0);
    assert!(
        moved("unknown", "unknown", "404") >= 1.0,
        "unknown methods share one label"
    );
    assert!(moved("web", "GET /signin", "200") >= 1.0);
    let latency = |samples: &[Sample]| {
        value(
            samples,
            "vesper_request_duration_seconds_count",
            &[("service", "projects"), ("method", "getById")],
        )
        .unwrap_or(0.0)
    };
    assert!(latency(&after_calls) - latency(&before) >= 3.0);
    for op in ["read", "write"] {
        let n = value(
            &after_calls,
            "vesper_storage_duration_seconds_count",
            &[("op", op)],
        );
        assert!(n.unwrap() > 0.0, "storage {op}");
    }
    for gauge in [
        "vesper_requests_in_flight",
        "vesper_open_connections",
        "vesper_sqlite_writer_queue",
    ] {
        assert!(value(&after_calls, gauge, &[]).unwrap() >= 0.0, "{gauge}");
    }
    if s.database_url().is_none() {
        let groups = value(&after_calls, "vesper_sqlite_group_size_count", &[]).unwrap();
        assert!(groups > 0.0, "SQLite commits are counted by group");
    }

    // A message that notifies the member queues one mail, which cannot be delivered.
    let depth = |samples: &[Sample]| value(samples, "vesper_mail_outbox_depth", &[]).unwrap();
    let queued_before = depth(&after_calls);
    let activity = caller
        .add(
            Kind::Activity,
            &[
                ("type", "msg"),
                ("text", "the lamp is out"),
                ("projectId", &project.to_string()),
                ("notifyUsers[]", &member.to_string()),
            ],
        )
        .await;
    let after_mail = scrape(metrics).await;
    assert!(
        depth(&after_mail) >= queued_before + 1.0,
        "outbox {} then {}",
        queued_before,
        depth(&after_mail)
    );

    // Attached bytes are counted.
    let stored =
        |samples: &[Sample]| value(samples, "vesper_file_bytes_stored_total", &[]).unwrap();
    let bytes = vec![7u8; 3000];
    let file = caller.attach(activity, "beacon.bin", &bytes).await;
    let last = scrape(metrics).await;
    assert!(stored(&last) - stored(&after_mail) >= bytes.len() as f64);
    // The undeliverable mail is retried, not lost.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = scrape(metrics).await;
        if value(&now, "vesper_mail_retries_total", &[]).unwrap() >= 1.0 {
            assert!(depth(&now) >= 1.0);
            break;
        }
        assert!(Instant::now() < deadline, "no retry counted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // No person, session or object in any label: ids are digits, and only bucket
    // bounds and status codes hold digits.
    let ids: Vec<String> = [member, project, missing, activity, file]
        .iter()
        .map(i64::to_string)
        .collect();
    for sample in &last {
        for (name, v) in &sample.labels {
            match name.as_str() {
                "le" => {
                    parse_value(v);
                }
                "status" => {
                    let code: u16 = v.parse().unwrap();
                    assert!((100..600).contains(&code), "{sample:?}");
                }
                _ => {
                    assert!(!v.contains('@'), "an email in {sample:?}");
                    assert!(
                        !v.chars().any(|c| c.is_ascii_digit()),
                        "an id in {sample:?}"
                    );
                    for secret in [admin.as_str(), member_sid.as_str(), member_email] {
                        assert!(!v.contains(secret), "{secret} in {sample:?}");
                    }
                    assert!(!ids.contains(v), "an id in {sample:?}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_not_served_on_the_api_port() {
    let metrics = free_addr();
    let s = TestServer::start_with(|c| c.metrics_listen = Some(metrics)).await;
    let r = read(s.client.get(s.https("/metrics")).send().await.unwrap()).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(!r.body.contains("vesper_"), "{}", r.body);
    // The metrics address speaks plain HTTP and serves nothing else.
    let other = reqwest::get(format!("http://{metrics}/health"))
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    assert!(!scrape(metrics).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_metrics_listen_nothing_serves_metrics() {
    // The configuration's default is off; the binary's listening sockets are counted in
    // tests/binary.rs.
    assert_eq!(vesper::config::Config::default().metrics_listen, None);
    let s = TestServer::start().await;
    let r = read(s.client.get(s.https("/metrics")).send().await.unwrap()).await;
    assert_eq!(r.status, 404);
}

// ---------------------------------------------------------------------------------------
// Request ids.

/// A made id: 32 hexadecimal digits.
fn is_made_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-request-id")
        .unwrap_or_else(|| panic!("no X-Request-Id on {} {}", r.status(), r.url()))
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_a_request_id() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let c = &s.client;
    let ok = c
        .get(s.api("authentication/getAuthorizedUser"))
        .header("X-Session-Id", &sid)
        .send()
        .await
        .unwrap();
    let refused = c
        .get(s.api("authentication/getAuthorizedUser"))
        .header("X-Session-Id", "not-a-session")
        .send()
        .await
        .unwrap();
    let unknown = c.get(s.https("/no/such/path")).send().await.unwrap();
    let page = c.get(s.https("/signin")).send().await.unwrap();
    let health = c.get(s.https("/health")).send().await.unwrap();
    let ready = c.get(s.https("/ready")).send().await.unwrap();
    let mut seen = Vec::new();
    for (r, status) in [
        (&ok, 200),
        (&refused, 401),
        (&unknown, 404),
        (&page, 200),
        (&health, 200),
        (&ready, 200),
    ] {
        assert_eq!(r.status(), status, "{}", r.url());
        let id = request_id(r);
        assert!(is_made_id(&id), "{id}");
        seen.push(id);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 6, "each request its own id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sane_client_id_is_kept_and_an_insane_one_replaced() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let api = s.api("authentication/getAuthorizedUser");
    let sane = ["abc.DEF_123-x", "7", &"z".repeat(128)];
    for id in sane {
        for url in [api.as_str(), &s.https("/health"), &s.https("/signin")] {
            let r = s
                .client
                .get(url)
                .header("X-Session-Id", &sid)
                .header("X-Request-Id", id)
                .send()
                .await
                .unwrap();
            assert_eq!(request_id(&r), id, "{url}");
        }
    }
    // A failure keeps it too.
    let r = s
        .client
        .get(&api)
        .header("X-Request-Id", "failing-call-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(request_id(&r), "failing-call-1");

    let too_long = "z".repeat(129);
    let insane: [&[u8]; 5] = [
        too_long.as_bytes(),
        b"has space",
        b"tab\there",
        b"semi;colon",
        b"caf\xc3\xa9",
    ];
    for id in insane {
        let r = s
            .client
            .get(&api)
            .header("X-Session-Id", &sid)
            .header(
                "X-Request-Id",
                reqwest::header::HeaderValue::from_bytes(id).unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let answered = request_id(&r);
        assert!(is_made_id(&answered), "{id:?} answered as {answered}");
    }
}

// ---------------------------------------------------------------------------------------
// Readiness.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_while_storage_does_not_answer_and_health_stays_200() {
    let s = TestServer::start().await;
    let get = |path: &'static str| {
        let (client, url) = (s.client.clone(), s.https(path));
        async move {
            let r = client.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap())
        }
    };
    assert_eq!(get("/ready").await, (200, "ready".to_owned()));
    assert_eq!(get("/health").await.0, 200);

    let outage = match s.database_url() {
        Some(url) => Outage::postgres(&url).await,
        None => Outage::sqlite(&s.dir.path().join("vesper.sqlite3")),
    };
    let started = Instant::now();
    let (status, body) = get("/ready").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "answered within its second"
    );
    assert_eq!(get("/health").await.0, 200, "liveness touches no storage");
    outage.end().await;

    let deadline = Instant::now() + Duration::from_secs(20);
    while get("/ready").await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "ready again once storage is back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Storage that does not answer, until ended.
enum Outage {
    /// Another connection holds SQLite's write lock: the writer waits on it.
    Sqlite {
        release: std::sync::mpsc::Sender<()>,
        holder: std::thread::JoinHandle<()>,
    },
    /// The database refuses connections and the server's are terminated.
    Postgres { admin_url: String, name: String },
}

impl Outage {
    fn sqlite(path: &std::path::Path) -> Outage {
        let (locked_tx, locked) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let path = path.to_owned();
        let holder = std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
            locked_tx.send(()).unwrap();
            // Held for at least three seconds: longer than /ready waits.
            std::thread::sleep(Duration::from_secs(3));
            let _ = released.recv();
            conn.execute_batch("ROLLBACK").unwrap();
        });
        locked.recv().unwrap();
        Outage::Sqlite { release, holder }
    }

    async fn postgres(url: &str) -> Outage {
        let admin_url = test_database_url().unwrap();
        let name = url
            .rsplit('/')
            .next()
            .unwrap()
            .split('?')
            .next()
            .unwrap()
            .to_owned();
        let admin = pg_client(&admin_url).await;
        admin
            .batch_execute(&format!(
                "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS false; \
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            ))
            .await
            .unwrap();
        Outage::Postgres { admin_url, name }
    }

    async fn end(self) {
        match self {
            Outage::Sqlite { release, holder } => {
                release.send(()).unwrap();
                tokio::task::spawn_blocking(move || holder.join().unwrap())
                    .await
                    .unwrap();
            }
            Outage::Postgres { admin_url, name } => {
                pg_client(&admin_url)
                    .await
                    .batch_execute(&format!(
                        "ALTER DATABASE \"{name}\" WITH ALLOW_CONNECTIONS true"
                    ))
                    .await
                    .unwrap();
            }
        }
    }
}
