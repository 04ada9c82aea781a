//! The TLS configuration: a configured PEM pair, or a self-signed certificate created in
//! the data folder on first start and renewed at a start when it nears its end.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::Config;

const DAY: Duration = Duration::from_secs(24 * 3600);
/// How long a self-signed certificate we make is valid: about a year, as browsers and
/// the CA/Browser Forum expect of a server certificate.
const SELF_SIGNED_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// A new self-signed certificate starts this far back, for clients whose clock is late.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);
/// A start this close to the self-signed certificate's end makes a new one.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// Loads the configured certificate, or the data folder's self-signed one (creating it
/// when missing), and logs its SHA-256 fingerprint.
pub fn server_config(config: &Config) -> anyhow::Result<Arc<ServerConfig>> {
    let (cert_path, key_path) = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        _ => {
            let dir = config.data_dir.join("tls");
            let cert = dir.join("cert.pem");
            let key = dir.join("key.pem");
            let base = config.base_domain.as_deref();
            if !cert.exists() || !key.exists() {
                create_self_signed(&dir, (&cert, &key), base, SystemTime::now())?;
            } else if let Some(reason) = renewal_reason(&cert, base, SystemTime::now()) {
                tracing::warn!(reason, "renewing the self-signed certificate");
                create_self_signed(&dir, (&cert, &key), base, SystemTime::now())?;
            }
            (cert, key)
        }
    };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .with_context(|| format!("reading {}", cert_path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", cert_path.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("reading {}", key_path.display()))?;
    let first = certs
        .first()
        .context("the certificate file holds no certificate")?;
    tracing::info!(
        certificate = %cert_path.display(),
        sha256 = %fingerprint(first),
        "TLS certificate loaded"
    );
    let mut tls =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("the certificate and key do not match")?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

/// `AB:CD:...`, as browsers show it.
pub fn fingerprint(cert: &CertificateDer) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn create_self_signed(
    dir: &Path,
    (cert_path, key_path): (&Path, &Path),
    base_domain: Option<&str>,
    now: SystemTime,
) -> anyhow::Result<()> {
    crate::files::create_private_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
    let key_pair = rcgen::KeyPair::generate()?;
    let cert = self_signed_params(base_domain, now)?.self_signed(&key_pair)?;
    write_private(key_path, key_pair.serialize_pem().as_bytes())?;
    write_private(cert_path, cert.pem().as_bytes())?;
    tracing::info!(certificate = %cert_path.display(), "created a self-signed certificate");
    Ok(())
}

/// The self-signed certificate's names and dates: the loopback names and, with a base
/// domain, every workspace's host under it; from `now` less the clock skew, for about a
/// year.
fn self_signed_params(
    base_domain: Option<&str>,
    now: SystemTime,
) -> anyhow::Result<rcgen::CertificateParams> {
    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if let Some(base) = base_domain {
        names.push(format!("*.{base}"));
    }
    let mut params = rcgen::CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Vesper self-signed");
    let since_epoch = now.duration_since(UNIX_EPOCH)?;
    // rcgen takes `time` dates; counting from its epoch date avoids depending on `time`.
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + since_epoch.saturating_sub(CLOCK_SKEW);
    params.not_after = epoch + since_epoch + SELF_SIGNED_VALIDITY;
    Ok(params)
}

/// Why the self-signed certificate at `cert_path` must be made again, if it must: it
/// ends within [`RENEW_BEFORE`], it is valid for decades (made by an earlier version,
/// 1975 to 4096), or it does not name the workspaces' hosts under the base domain. A file
/// that cannot be read as a certificate is left to fail loading.
fn renewal_reason(
    cert_path: &Path,
    base_domain: Option<&str>,
    now: SystemTime,
) -> Option<&'static str> {
    let cert = CertificateDer::pem_file_iter(cert_path)
        .ok()?
        .next()?
        .ok()?;
    let (not_before, not_after) = validity(&cert)?;
    let now = now.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64;
    if not_after - now < RENEW_BEFORE.as_secs() as i64 {
        Some("it ends within 30 days")
    } else if not_after - not_before > 2 * 366 * DAY.as_secs() as i64 {
        Some("it is valid for decades (made by an earlier version)")
    } else if base_domain.is_some_and(|base| !names_wildcard(&cert, base)) {
        Some("it does not name the workspaces under the base domain")
    } else {
        None
    }
}

/// Whether the certificate holds the name `*.<base>`: a dNSName of the subject
/// alternative names is the name's bytes as they are, so finding them is enough for a
/// certificate this server made.
fn names_wildcard(cert: &[u8], base: &str) -> bool {
    let name = format!("*.{base}");
    cert.windows(name.len()).any(|w| w == name.as_bytes())
}

/// A certificate's notBefore and notAfter in seconds since 1970, read from its DER:
/// `Certificate { tbsCertificate { [0] version, serial, signature, issuer, validity
/// { notBefore, notAfter } ... } ... }`. (No X.509 parser is among the dependencies.)
fn validity(cert: &[u8]) -> Option<(i64, i64)> {
    let (0x30, certificate, _) = der_element(cert)? else {
        return None;
    };
    let (0x30, tbs, _) = der_element(certificate)? else {
        return None;
    };
    let mut rest = tbs;
    let (tag, _, after_version) = der_element(rest)?;
    if tag == 0xA0 {
        rest = after_version;
    }
    // The serial number, the signature algorithm and the issuer.
    for expected in [0x02, 0x30, 0x30] {
        let (tag, _, after) = der_element(rest)?;
        if tag != expected {
            return None;
        }
        rest = after;
    }
    let (0x30, dates, _) = der_element(rest)? else {
        return None;
    };
    let (first_tag, not_before, rest) = der_element(dates)?;
    let (second_tag, not_after, _) = der_element(rest)?;
    Some((
        der_time(first_tag, not_before)?,
        der_time(second_tag, not_after)?,
    ))
}

/// One DER element: its tag, its contents and what follows it.
fn der_element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, tag 0x17) or GeneralizedTime (`YYYYMMDDHHMMSSZ`, tag 0x18)
/// in seconds since 1970.
fn der_time(tag: u8, text: &[u8]) -> Option<i64> {
    let digits = text.strip_suffix(b"Z")?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = |d: &[u8]| d.iter().fold(0i64, |a, &b| a * 10 + i64::from(b - b'0'));
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy = number(&digits[..2]);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (number(&digits[..4]), &digits[4..]),
        _ => return None,
    };
    let field = |i: usize| number(&rest[i..i + 2]);
    let days = days_from_civil(year, field(0), field(2));
    Some(days * 86_400 + field(4) * 3600 + field(6) * 60 + field(8))
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let shifted_month = if month > 2 { month - 3 } else { month + 9 };
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, crate::files::PRIVATE_FILE);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(t: SystemTime) -> i64 {
        t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
    }

    fn first_cert(path: &Path) -> CertificateDer<'static> {
        CertificateDer::pem_file_iter(path)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
    }

    /// A certificate of our names with these dates, as an older start left it.
    fn write_cert(dir: &Path, not_before: SystemTime, not_after: SystemTime) {
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        let mut params = self_signed_params(None, SystemTime::now()).unwrap();
        params.not_before = epoch + not_before.duration_since(UNIX_EPOCH).unwrap();
        params.not_after = epoch + not_after.duration_since(UNIX_EPOCH).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        std::fs::create_dir_all(dir.join("tls")).unwrap();
        std::fs::write(dir.join("tls/cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("tls/key.pem"), key.serialize_pem()).unwrap();
    }

    fn config_in(dir: &Path) -> Config {
        Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        }
    }

    #[test]
    fn dates_are_read_from_der() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(der_time(0x17, b"750101000000Z"), Some(157_766_400));
        assert_eq!(der_time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(der_time(0x18, b"40960101000000Z"), Some(67_090_118_400));
        assert_eq!(der_time(0x18, b"4096010100000Z"), None);
        // rcgen's own default dates: 1975 (UTCTime) to 4096 (GeneralizedTime).
        let old = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        assert_eq!(
            validity(old.cert.der()),
            Some((157_766_400, 67_090_118_400))
        );
        assert_eq!(validity(b"\x30\x03\x30\x01"), None);
    }

    #[test]
    fn a_new_self_signed_certificate_is_valid_from_now_for_a_year() {
        let dir = tempfile::tempdir().unwrap();
        let before = unix(SystemTime::now());
        server_config(&config_in(dir.path())).unwrap();
        let after = unix(SystemTime::now());
        let (not_before, not_after) =
            validity(&first_cert(&dir.path().join("tls/cert.pem"))).unwrap();
        assert!(
            (before - 3600..=after - 3600).contains(&not_before),
            "{not_before} is an hour before {before}..{after}"
        );
        let year = 365 * 86_400;
        assert!(
            (before + year..=after + year).contains(&not_after),
            "{not_after} is a year after {before}..{after}"
        );
    }

    #[test]
    fn a_self_signed_certificate_near_its_end_is_renewed_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        write_cert(dir.path(), now - 300 * DAY, now + 20 * DAY);
        let path = dir.path().join("tls/cert.pem");
        let old = std::fs::read(&path).unwrap();
        server_config(&config_in(dir.path())).unwrap();
        assert_ne!(std::fs::read(&path).unwrap(), old, "a new certificate");
        let (_, not_after) = validity(&first_cert(&path)).unwrap();
        assert!(not_after > unix(now) + 360 * 86_400);
    }

    #[test]
    fn a_self_signed_certificate_valid_for_decades_is_renewed() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        write_cert(dir.path(), UNIX_EPOCH + 5 * 365 * DAY, now + 700_000 * DAY);
        let path = dir.path().join("tls/cert.pem");
        server_config(&config_in(dir.path())).unwrap();
        let (not_before, not_after) = validity(&first_cert(&path)).unwrap();
        assert!(not_before > unix(now) - 2 * 3600);
        assert!(not_after < unix(now) + 400 * 86_400);
    }

    #[test]
    fn a_self_signed_certificate_with_time_left_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        write_cert(dir.path(), now - 100 * DAY, now + 200 * DAY);
        let path = dir.path().join("tls/cert.pem");
        let old = std::fs::read(&path).unwrap();
        server_config(&config_in(dir.path())).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), old);
    }

    #[test]
    fn a_base_domain_puts_its_wildcard_in_the_self_signed_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        write_cert(dir.path(), now - 100 * DAY, now + 200 * DAY);
        let path = dir.path().join("tls/cert.pem");
        let old = std::fs::read(&path).unwrap();
        let config = Config {
            base_domain: Some("vesper.example".into()),
            ..config_in(dir.path())
        };
        server_config(&config).unwrap();
        let new = std::fs::read(&path).unwrap();
        assert_ne!(new, old, "made again with the wildcard");
        assert!(names_wildcard(&first_cert(&path), "vesper.example"));
        server_config(&config).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), new, "kept once it names it");
    }

    #[test]
    fn a_configured_certificate_is_never_renewed() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        write_cert(dir.path(), now - 300 * DAY, now + 2 * DAY);
        let cert = dir.path().join("tls/cert.pem");
        let key = dir.path().join("tls/key.pem");
        let old = std::fs::read(&cert).unwrap();
        let config = Config {
            tls_cert: Some(cert.clone()),
            tls_key: Some(key),
            ..config_in(&dir.path().join("elsewhere"))
        };
        server_config(&config).unwrap();
        assert_eq!(std::fs::read(&cert).unwrap(), old);
        assert!(!dir.path().join("elsewhere/tls").exists());
    }
}
