//! How many connections may be open: in all (bounded by the process's open-file limit)
//! and from one address, so that one client cannot take every descriptor.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Descriptors kept for everything but client connections: the database, files being
/// uploaded or downloaded, mail, logs.
const RESERVED_FILES: u64 = 256;

/// Counts the open connections and refuses new ones over the caps.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_address: usize,
    /// Addresses not capped per address: a trusted proxy carries many clients.
    uncapped: Vec<IpAddr>,
    total: AtomicUsize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; its counts drop with it.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    addr: Option<IpAddr>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TooManyInAll,
    TooManyFromAddress,
}

impl Admission {
    /// `max_total` is lowered to what the open-file limit allows.
    pub fn new(max_total: usize, max_per_address: usize, uncapped: Vec<IpAddr>) -> Arc<Self> {
        let by_files = open_file_limit()
            .map(|n| n.saturating_sub(RESERVED_FILES).max(1))
            .unwrap_or(u64::MAX);
        let max_total = max_total.min(usize::try_from(by_files).unwrap_or(usize::MAX));
        Arc::new(Admission {
            max_total,
            max_per_address,
            uncapped,
            total: AtomicUsize::new(0),
            by_address: Mutex::new(HashMap::new()),
        })
    }

    pub fn max_total(&self) -> usize {
        self.max_total
    }

    pub fn admit(self: &Arc<Self>, addr: IpAddr) -> Result<Admitted, Refusal> {
        let addr = address_block(addr);
        if self.total.fetch_add(1, Ordering::Relaxed) >= self.max_total {
            self.total.fetch_sub(1, Ordering::Relaxed);
            return Err(Refusal::TooManyInAll);
        }
        let mut admitted = Admitted {
            admission: self.clone(),
            addr: None,
        };
        if !self.uncapped.contains(&addr) {
            let mut by_address = self.by_address.lock().expect("not poisoned");
            let count = by_address.entry(addr).or_insert(0);
            if *count >= self.max_per_address {
                return Err(Refusal::TooManyFromAddress);
            }
            *count += 1;
            admitted.addr = Some(addr);
        }
        Ok(admitted)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(addr) = self.addr {
            let mut by_address = self.admission.by_address.lock().expect("not poisoned");
            if let Some(count) = by_address.get_mut(&addr) {
                *count -= 1;
                if *count == 0 {
                    by_address.remove(&addr);
                }
            }
        }
        self.admission.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A warning logged at most once per interval, with the count of those left out: a
/// flood of refused connections or failed accepts must not flood the log.
#[derive(Debug)]
pub struct Throttled {
    interval: Duration,
    last: Option<Instant>,
    left_out: u64,
}

impl Throttled {
    pub fn new(interval: Duration) -> Throttled {
        Throttled {
            interval,
            last: None,
            left_out: 0,
        }
    }

    /// Whether to log now; if so, also how many were left out since the last one.
    pub fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.interval)
        {
            self.left_out += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.left_out))
    }
}

/// What one client holds: its IPv4 address, or the /64 of its IPv6 address (one host's
/// share of a network; it can pick any address in it). IPv4 written as IPv6 counts as IPv4.
pub fn address_block(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// The soft limit of open files (`None`: unlimited or unknown).
#[allow(unsafe_code)]
pub fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives on this stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return None;
    }
    // rlim_t is u64 on Linux, not everywhere.
    #[allow(clippy::unnecessary_cast)]
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur as u64)
}

/// Raises the soft limit of open files to the hard limit (the usual soft limit, 1,024,
/// is a few hundred idle clients) and returns the limit now in force.
#[allow(unsafe_code)]
pub fn raise_open_file_limit() -> std::io::Result<Option<u64>> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives on this stack.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given; raising the soft limit up
        // to the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(open_file_limit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_in_all_and_per_address_and_free_on_drop() {
        let proxy: IpAddr = "10.0.0.9".parse().unwrap();
        let admission = Admission::new(5, 2, vec![proxy]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let first = admission.admit(a).unwrap();
        let _second = admission.admit(a).unwrap();
        assert_eq!(admission.admit(a).unwrap_err(), Refusal::TooManyFromAddress);
        let _third = admission.admit(b).unwrap();
        let _proxied: Vec<_> = (0..2).map(|_| admission.admit(proxy).unwrap()).collect();
        assert_eq!(admission.admit(b).unwrap_err(), Refusal::TooManyInAll);
        drop(first);
        assert!(admission.admit(a).is_ok(), "a freed place is taken again");
    }

    #[test]
    fn ipv6_clients_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let block = |s: &str| address_block(s.parse().unwrap()).to_string();
        assert_eq!(block("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(block("2001:db8:1:2:ffff::1"), "2001:db8:1:2::");
        assert_eq!(block("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(block("192.0.2.7"), "192.0.2.7");
    }

    #[test]
    fn the_file_limit_bounds_the_total() {
        let files = open_file_limit().unwrap();
        let admission = Admission::new(usize::MAX, 10, Vec::new());
        assert_eq!(admission.max_total() as u64, files - RESERVED_FILES);
    }

    #[test]
    fn throttled_warnings_count_what_they_leave_out() {
        let mut warn = Throttled::new(Duration::from_secs(60));
        assert_eq!(warn.allow(), Some(0));
        assert_eq!(warn.allow(), None);
        assert_eq!(warn.allow(), None);
        warn.last = Some(Instant::now() - Duration::from_secs(61));
        assert_eq!(warn.allow(), Some(2));
    }
}
