//! Time limits inside a connection: how long it may sit with no request in flight, how
//! long an answer may wait for a client that stopped reading, and how slowly a request
//! body may arrive. The same for HTTP/1.1 and HTTP/2: they watch requests and bodies as
//! hyper hands them over, not the protocol.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

/// The most of a refused request's body read and thrown away, so that the client, still
/// sending, reads the answer instead of a reset connection.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

/// What the watchdog of one connection looks at; shared by its requests and answers.
#[derive(Debug)]
pub struct Activity {
    born: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `born` to the last request's start or answer's end.
    last_request: AtomicU64,
    /// Answers holding a piece hyper took but has not yet asked past: their client is
    /// not reading (or the network is slow).
    answers_waiting: AtomicUsize,
    /// Milliseconds from `born` to the last time an answer's piece was taken.
    last_answer_progress: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            born: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_request: AtomicU64::new(0),
            answers_waiting: AtomicUsize::new(0),
            last_answer_progress: AtomicU64::new(0),
        })
    }

    fn millis(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    fn at(&self, millis: &AtomicU64) -> Instant {
        self.born + Duration::from_millis(millis.load(Ordering::Relaxed))
    }

    /// A request arrived; it is in flight until the guard (carried by its answer) drops.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.last_request.store(self.millis(), Ordering::Relaxed);
        InFlight(
            self.clone(),
            crate::metrics::METRICS.requests_in_flight.track(),
        )
    }

    fn answer_handed(&self) {
        if self.answers_waiting.fetch_add(1, Ordering::Relaxed) == 0 {
            self.last_answer_progress
                .store(self.millis(), Ordering::Relaxed);
        }
    }

    fn answer_taken(&self) {
        self.last_answer_progress
            .store(self.millis(), Ordering::Relaxed);
        self.answers_waiting.fetch_sub(1, Ordering::Relaxed);
    }

    /// Resolves, with the reason, once the connection must be closed: no request in
    /// flight for `idle`, or an answer not taken any further for `write`.
    pub async fn watchdog(&self, idle: Duration, write: Duration) -> &'static str {
        // A change of state (a request ending, an answer starting to wait) is seen
        // within a quarter of the shorter limit.
        let tick = idle.min(write) / 4;
        loop {
            let now = Instant::now();
            let mut next = now + tick;
            if self.in_flight.load(Ordering::Relaxed) == 0 {
                let deadline = self.at(&self.last_request) + idle;
                if deadline <= now {
                    return "idle";
                }
                next = next.min(deadline);
            }
            if self.answers_waiting.load(Ordering::Relaxed) > 0 {
                let deadline = self.at(&self.last_answer_progress) + write;
                if deadline <= now {
                    return "the client stopped reading the answer";
                }
                next = next.min(deadline);
            }
            tokio::time::sleep_until(next).await;
        }
    }
}

/// A request in flight; dropped with its answer (sent, or abandoned). It counts in the
/// server's requests-in-flight gauge meanwhile.
#[derive(Debug)]
pub struct InFlight(
    Arc<Activity>,
    // Held for its drop alone.
    #[allow(dead_code)] crate::metrics::Tracked,
);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .last_request
            .store(self.0.millis(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An answer's body as hyper sends it: tells the connection's watchdog when hyper holds
/// a piece it has not yet been able to send.
pub struct Answer {
    body: axum::body::Body,
    in_flight: InFlight,
    /// A piece was handed over and hyper has not asked for the next one.
    handed: bool,
}

impl Answer {
    pub fn new(body: axum::body::Body, in_flight: InFlight) -> Answer {
        Answer {
            body,
            in_flight,
            handed: false,
        }
    }
}

impl Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if std::mem::take(&mut this.handed) {
            this.in_flight.0.answer_taken();
        }
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = polled {
            this.handed = true;
            this.in_flight.0.answer_handed();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if self.handed {
            self.in_flight.0.answer_taken();
        }
    }
}

/// How slowly a request body may arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyPace {
    /// The longest wait for the next piece, and the start's grace before the rate counts.
    pub timeout: Duration,
    /// Bytes a second on average after the grace; 0: no minimum.
    pub min_bytes_per_sec: u64,
}

/// A request body that fails when it stalls: nothing for `timeout`, or less than the
/// minimum rate (the deadline moves a second further per `min_bytes_per_sec` bytes, as
/// Apache's mod_reqtimeout does). A body left unread is drained (within limits) after
/// it is dropped, so the answer reaches a client that is still sending.
pub struct Arriving {
    inner: Option<Incoming>,
    pace: BodyPace,
    /// Set on a stall: the request gets a 408 answer whatever its handler made of it.
    stalled: Arc<AtomicBool>,
    /// Whether a body dropped unread is drained.
    drain: bool,
    started: Option<Instant>,
    received: u64,
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl Arriving {
    pub fn new(inner: Incoming, pace: BodyPace, drain: bool) -> Arriving {
        Arriving {
            inner: Some(inner),
            pace,
            stalled: Arc::new(AtomicBool::new(false)),
            drain,
            started: None,
            received: 0,
            waiting_since: None,
            timer: None,
        }
    }

    /// Tells whether the body stalled; shared with whoever answers the request.
    pub fn stall_flag(&self) -> Arc<AtomicBool> {
        self.stalled.clone()
    }

    fn deadline(&self, now: Instant) -> Instant {
        let waiting_since = self.waiting_since.unwrap_or(now);
        let mut deadline = waiting_since + self.pace.timeout;
        if self.pace.min_bytes_per_sec > 0 {
            let earned = self.received as f64 / self.pace.min_bytes_per_sec as f64;
            let started = self.started.unwrap_or(now);
            let by_rate = started + self.pace.timeout + Duration::from_secs_f64(earned);
            deadline = deadline.min(by_rate);
        }
        deadline
    }

    fn stall(&mut self) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.stalled.store(true, Ordering::Relaxed);
        // Not drained: a client this slow does not get more of our time.
        self.inner = None;
        Poll::Ready(Some(Err(BodyError::Stalled)))
    }
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body stalled")]
    Stalled,
    #[error(transparent)]
    Network(#[from] hyper::Error),
}

impl Body for Arriving {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let now = Instant::now();
        this.started.get_or_insert(now);
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                }
                this.waiting_since = None;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.inner = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.inner = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                // The wait starts when the handler asks, not at the last piece: a handler
                // busy between two reads is not the client's delay.
                this.waiting_since.get_or_insert(now);
                let deadline = this.deadline(now);
                if deadline <= now {
                    return this.stall();
                }
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() != deadline {
                    timer.as_mut().reset(deadline);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => this.stall(),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for Arriving {
    fn drop(&mut self) {
        if !self.drain || self.is_end_stream() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // Its own stall flag and clock: the answer may be on its way already, and a drain
        // that stalls must not turn it into a 408.
        let rest = Arriving {
            inner: self.inner.take(),
            pace: self.pace,
            stalled: Arc::new(AtomicBool::new(false)),
            drain: false,
            started: None,
            received: 0,
            waiting_since: None,
            timer: None,
        };
        runtime.spawn(drain(rest));
    }
}

/// Reads and throws away the rest of a body, at most [`DRAIN_LIMIT`] bytes and at the
/// body's pace.
async fn drain(mut rest: Arriving) {
    let mut drained = 0u64;
    while let Some(Ok(frame)) = rest.frame().await {
        drained += frame.data_ref().map_or(0, |d| d.len() as u64);
        if drained > DRAIN_LIMIT {
            break;
        }
    }
}
