//! The server's metrics: a small registry of atomics, written out in the Prometheus text
//! format (`docs/operations.md` lists every series).
//!
//! One process serves one server, so the registry is the process's ([`METRICS`]): every
//! room records into it without being handed anything. Label values come only from the
//! code (the endpoint table, route templates, status codes), never from a request: no
//! id, email or other personal data can reach a label.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::Duration;

/// Every metric of the process.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// Seconds: the upper bounds of the latency buckets.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Writes per SQLite commit: the upper bounds of the group-size buckets.
const GROUP_SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// A value that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Raised now, lowered when the guard drops.
    pub fn track(&'static self) -> Tracked {
        self.add(1);
        Tracked(self)
    }
}

/// One unit of a [`Gauge`], given back on drop.
#[derive(Debug)]
pub struct Tracked(&'static Gauge);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.add(-1);
    }
}

/// Observations counted into fixed buckets.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), the last one past every bound.
    buckets: Box<[AtomicU64]>,
    /// The sum in millionths of the unit: atomics hold no floats.
    sum_micro: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micro: AtomicU64::new(0),
        }
    }

    fn seconds() -> Histogram {
        Histogram::new(SECONDS)
    }

    pub fn observe(&self, value: f64) {
        let i = self.bounds.partition_point(|b| *b < value);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micro
            .fetch_add((value * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// How many observations so far.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = match self.bounds.get(i) {
                Some(b) => b.to_string(),
                None => "+Inf".to_owned(),
            };
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = self.sum_micro.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

/// The requests of one service and method.
#[derive(Debug)]
struct Route {
    latency: Histogram,
    /// Answers by status code.
    statuses: Mutex<Vec<(u16, u64)>>,
}

/// The storage calls of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    Read,
    Write,
}

/// Every series the server keeps (gauges read from storage at scrape time are handed to
/// [`Metrics::render`]).
#[derive(Debug)]
pub struct Metrics {
    routes: RwLock<HashMap<(&'static str, &'static str), Arc<Route>>>,
    pub requests_in_flight: Gauge,
    pub open_connections: Gauge,
    store_reads: Histogram,
    store_writes: Histogram,
    pub sqlite_writer_queue: Gauge,
    pub sqlite_group_size: Histogram,
    pub mail_sent: Counter,
    pub mail_retries: Counter,
    pub mail_failures: Counter,
    pub file_bytes_stored: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            routes: RwLock::default(),
            requests_in_flight: Gauge::default(),
            open_connections: Gauge::default(),
            store_reads: Histogram::seconds(),
            store_writes: Histogram::seconds(),
            sqlite_writer_queue: Gauge::default(),
            sqlite_group_size: Histogram::new(GROUP_SIZES),
            mail_sent: Counter::default(),
            mail_retries: Counter::default(),
            mail_failures: Counter::default(),
            file_bytes_stored: Counter::default(),
        }
    }
}

/// The most distinct labels [`label`] keeps; later ones share `other`.
const MAX_LABELS: usize = 256;

/// `text` as a label value that lives for the process. Only for text the code chooses
/// from a bounded set (a route template): it is kept for good.
pub fn label(text: &str) -> &'static str {
    static KNOWN: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut known = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(found) = known.iter().find(|k| **k == text) {
        return found;
    }
    if known.len() >= MAX_LABELS {
        return "other";
    }
    let kept: &'static str = Box::leak(text.to_owned().into_boxed_str());
    known.push(kept);
    kept
}

/// Times a storage call until dropped (also when it returns early with an error).
#[derive(Debug)]
pub struct StoreTimer {
    op: StoreOp,
    started: std::time::Instant,
}

impl Drop for StoreTimer {
    fn drop(&mut self) {
        METRICS
            .store(self.op)
            .observe_duration(self.started.elapsed());
    }
}

/// Starts timing a storage call of this kind.
pub fn store_timer(op: StoreOp) -> StoreTimer {
    StoreTimer {
        op,
        started: std::time::Instant::now(),
    }
}

impl Metrics {
    /// Records an answered request. `service` and `method` come from code (the endpoint
    /// table, a route template, `unknown`), never from the request.
    pub fn request(
        &self,
        service: &'static str,
        method: &'static str,
        status: u16,
        took: Duration,
    ) {
        let key = (service, method);
        let found = self
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        let route = match found {
            Some(route) => route,
            None => self
                .routes
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .entry(key)
                .or_insert_with(|| {
                    Arc::new(Route {
                        latency: Histogram::seconds(),
                        statuses: Mutex::default(),
                    })
                })
                .clone(),
        };
        route.latency.observe_duration(took);
        let mut statuses = route.statuses.lock().unwrap_or_else(|p| p.into_inner());
        match statuses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => statuses.push((status, 1)),
        }
    }

    pub fn store(&self, op: StoreOp) -> &Histogram {
        match op {
            StoreOp::Read => &self.store_reads,
            StoreOp::Write => &self.store_writes,
        }
    }

    /// The text format, version 0.0.4. `outbox_depth` is read from storage by the caller
    /// (`None`: storage did not answer, and the series is left out).
    pub fn render(&self, outbox_depth: Option<i64>) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let mut routes: Vec<_> = self
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        routes.sort_by_key(|(k, _)| *k);

        header(
            &mut out,
            "vesper_requests_total",
            "counter",
            "Answered requests by service, method and status.",
        );
        for ((service, method), route) in &routes {
            let mut statuses = route
                .statuses
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            statuses.sort_unstable();
            for (status, n) in statuses {
                let _ = writeln!(
                    out,
                    "vesper_requests_total{{service=\"{service}\",method=\"{method}\",status=\"{status}\"}} {n}"
                );
            }
        }
        header(
            &mut out,
            "vesper_request_duration_seconds",
            "histogram",
            "Time from a request's dispatch to its answer, by service and method.",
        );
        for ((service, method), route) in &routes {
            let labels = format!("service=\"{service}\",method=\"{method}\"");
            route
                .latency
                .write(&mut out, "vesper_request_duration_seconds", &labels);
        }
        gauge(
            &mut out,
            "vesper_requests_in_flight",
            "Requests received and not yet answered.",
            self.requests_in_flight.get(),
        );
        gauge(
            &mut out,
            "vesper_open_connections",
            "Client connections open on the API port.",
            self.open_connections.get(),
        );
        header(
            &mut out,
            "vesper_storage_duration_seconds",
            "histogram",
            "Time spent in storage calls, waiting included, by kind (read or write).",
        );
        self.store_reads
            .write(&mut out, "vesper_storage_duration_seconds", "op=\"read\"");
        self.store_writes
            .write(&mut out, "vesper_storage_duration_seconds", "op=\"write\"");
        gauge(
            &mut out,
            "vesper_sqlite_writer_queue",
            "Writes waiting for the SQLite writer thread.",
            self.sqlite_writer_queue.get(),
        );
        header(
            &mut out,
            "vesper_sqlite_group_size",
            "histogram",
            "Writes committed together in one SQLite transaction.",
        );
        self.sqlite_group_size
            .write(&mut out, "vesper_sqlite_group_size", "");
        if let Some(depth) = outbox_depth {
            gauge(
                &mut out,
                "vesper_mail_outbox_depth",
                "Mails queued, neither sent nor given up.",
                depth,
            );
        }
        counter(
            &mut out,
            "vesper_mail_sent_total",
            "Mails delivered.",
            self.mail_sent.get(),
        );
        counter(
            &mut out,
            "vesper_mail_retries_total",
            "Failed deliveries that will be tried again.",
            self.mail_retries.get(),
        );
        counter(
            &mut out,
            "vesper_mail_failures_total",
            "Mails given up after their last attempt.",
            self.mail_failures.get(),
        );
        counter(
            &mut out,
            "vesper_file_bytes_stored_total",
            "Bytes of attached files stored.",
            self.file_bytes_stored.get(),
        );
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn gauge(out: &mut String, name: &str, help: &str, value: i64) {
    header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    header(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let h = Histogram::new(&[1.0, 2.0]);
        h.observe(0.5);
        h.observe(1.0);
        h.observe(1.5);
        h.observe(7.0);
        let mut out = String::new();
        h.write(&mut out, "x", "a=\"b\"");
        assert_eq!(
            out,
            "x_bucket{a=\"b\",le=\"1\"} 2\nx_bucket{a=\"b\",le=\"2\"} 3\n\
             x_bucket{a=\"b\",le=\"+Inf\"} 4\nx_sum{a=\"b\"} 10\nx_count{a=\"b\"} 4\n"
        );
    }

    #[test]
    fn requests_are_counted_by_route_and_status() {
        let m = Metrics::default();
        m.request("users", "getAll", 200, Duration::from_millis(3));
        m.request("users", "getAll", 200, Duration::from_millis(3));
        m.request("users", "getAll", 401, Duration::from_millis(1));
        let text = m.render(Some(4));
        assert!(text.contains(
            "vesper_requests_total{service=\"users\",method=\"getAll\",status=\"200\"} 2\n"
        ));
        assert!(text.contains(
            "vesper_requests_total{service=\"users\",method=\"getAll\",status=\"401\"} 1\n"
        ));
        assert!(text.contains(
            "vesper_request_duration_seconds_count{service=\"users\",method=\"getAll\"} 3\n"
        ));
        assert!(text.contains("vesper_mail_outbox_depth 4\n"));
        assert!(!m.render(None).contains("vesper_mail_outbox_depth"));
    }
}
