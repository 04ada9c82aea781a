//! Email notifications (section 11): who gets mail, what it says, and the worker that
//! delivers the outbox over SMTP (or into `.eml` files when no server is configured).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use crate::domain::now;
use crate::domain::policy::Actor;
use crate::domain::user::User;
use crate::store::{OutgoingMail, QueuedMail, Store};

/// How long a claimed mail stays with one worker before another may try it.
const LEASE_SECS: i64 = 120;
/// The longest wait between two attempts.
const MAX_BACKOFF_SECS: i64 = 3_600;

/// What a notification is about.
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    /// "project", "task", "message", "progress note", ...
    pub kind: &'a str,
    /// "created" or "updated".
    pub action: &'a str,
    pub project: Option<&'a str>,
    pub task: Option<&'a str>,
    pub author: &'a str,
    pub text: Option<&'a str>,
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Subject, plain text and HTML of a notice. Every user-written text is escaped in the
/// HTML.
pub fn compose(n: &Notice) -> (String, String, String) {
    let place = match (n.task, n.project) {
        (Some(t), Some(p)) => format!("{t} ({p})"),
        (Some(t), None) => t.to_owned(),
        (None, Some(p)) => p.to_owned(),
        (None, None) => String::new(),
    };
    // Subjects are one line whatever the names hold.
    let subject = format!("[Vesper] {} {} {} {}", n.author, n.action, n.kind, place)
        .replace(['\r', '\n'], " ")
        .trim()
        .to_owned();
    let mut text = format!("{} {} a {}.\n", n.author, n.action, n.kind);
    let mut html = format!(
        "<p><strong>{}</strong> {} a {}.</p>\n",
        escape_html(n.author),
        escape_html(n.action),
        escape_html(n.kind)
    );
    if let Some(p) = n.project {
        text.push_str(&format!("Project: {p}\n"));
        html.push_str(&format!("<p>Project: {}</p>\n", escape_html(p)));
    }
    if let Some(t) = n.task {
        text.push_str(&format!("Task: {t}\n"));
        html.push_str(&format!("<p>Task: {}</p>\n", escape_html(t)));
    }
    if let Some(body) = n.text.filter(|t| !t.trim().is_empty()) {
        text.push_str(&format!("\n{body}\n"));
        html.push_str(&format!(
            "<blockquote>{}</blockquote>\n",
            escape_html(body).replace('\n', "<br>\n")
        ));
    }
    (subject, text, html)
}

/// The mails of a notice: to every candidate that is active, not the author, and may see
/// the object (`may_see`, asked with the candidate as the caller). One mail per address.
pub fn mails_for(
    candidates: &[User],
    author_id: i64,
    may_see: impl Fn(&Actor) -> bool,
    sees_project: impl Fn(&Actor) -> bool,
    notice: &Notice,
) -> Vec<OutgoingMail> {
    let named = compose(notice);
    // An external sees the tasks of their task teams in projects they may not see: their
    // notice does not name the project.
    let unnamed = compose(&Notice {
        project: None,
        ..notice.clone()
    });
    let mut seen = std::collections::HashSet::new();
    candidates
        .iter()
        .filter(|u| u.active && u.id != author_id)
        .filter_map(|u| {
            let actor = Actor {
                user_id: u.id,
                level: u.security_level,
                can_view_profiles: u.can_view_profiles,
            };
            may_see(&actor).then(|| (u, sees_project(&actor)))
        })
        .filter(|(u, _)| seen.insert(u.email.to_lowercase()))
        .map(|(u, sees_project)| {
            let (subject, text_body, html_body) = if sees_project { &named } else { &unnamed };
            OutgoingMail {
                recipient: u.email.clone(),
                subject: subject.clone(),
                text_body: text_body.clone(),
                html_body: html_body.clone(),
            }
        })
        .collect()
}

/// Where mail goes.
#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// No SMTP server configured: each mail becomes `<id>.eml` in this folder.
    Folder(PathBuf),
}

/// Delivers queued mail.
#[derive(Clone)]
pub struct Mailer {
    pub transport: Transport,
    pub from: Mailbox,
    pub max_attempts: i64,
}

impl Mailer {
    /// From the configuration: an `smtp://` (`?tls=required` for STARTTLS) or `smtps://`
    /// URL, or the data folder's `mail/` when there is none.
    pub fn new(
        smtp_url: Option<&str>,
        from: &str,
        data_dir: &std::path::Path,
        max_attempts: i64,
    ) -> anyhow::Result<Mailer> {
        let transport = match smtp_url {
            Some(url) if !url.is_empty() => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|_| anyhow::anyhow!("the SMTP URL is not valid"))?
                    .timeout(Some(Duration::from_secs(20)))
                    .build(),
            ),
            _ => {
                let dir = data_dir.join("mail");
                crate::files::create_private_dir(&dir)?;
                Transport::Folder(dir)
            }
        };
        Ok(Mailer {
            transport,
            from: from
                .parse()
                .map_err(|e| anyhow::anyhow!("the mail sender {from:?} is not valid: {e}"))?,
            max_attempts,
        })
    }

    async fn deliver(&self, queued: &QueuedMail) -> anyhow::Result<()> {
        let m = &queued.mail;
        let message = Message::builder()
            .from(self.from.clone())
            .to(m.recipient.parse()?)
            .subject(m.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                m.text_body.clone(),
                m.html_body.clone(),
            ))?;
        match &self.transport {
            Transport::Smtp(smtp) => {
                smtp.send(message).await?;
            }
            Transport::Folder(dir) => {
                let path = dir.join(format!("{}.eml", queued.id));
                // Mail is as private as the data it tells of.
                let mut file = crate::files::private_file().open(&path).await?;
                file.write_all(&message.formatted()).await?;
                file.sync_all().await?;
            }
        }
        Ok(())
    }
}

/// Delivers the outbox until the server stops: claims due mail, sends it, records the
/// outcome, retries failures with exponential backoff and gives up after
/// `max_attempts`. Restarted if it ever panics.
pub async fn supervise(store: Arc<dyn Store>, mailer: Mailer, wake: Arc<Notify>) {
    loop {
        let worker = tokio::spawn(run(store.clone(), mailer.clone(), wake.clone()));
        match worker.await {
            Ok(()) => return,
            Err(e) => {
                tracing::error!(error = %e, "the mail worker stopped; restarting it");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn run(store: Arc<dyn Store>, mailer: Mailer, wake: Arc<Notify>) {
    loop {
        let batch = match store.claim_mail(now(), LEASE_SECS, 20).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the outbox");
                Vec::new()
            }
        };
        for queued in &batch {
            let outcome = mailer.deliver(queued).await;
            let recorded = match outcome {
                Ok(()) => {
                    crate::metrics::METRICS.mail_sent.inc();
                    store.mail_sent(queued.id, now()).await
                }
                Err(e) => {
                    let attempt = queued.attempts + 1;
                    let retry_at = (attempt < mailer.max_attempts)
                        .then(|| now() + (1i64 << attempt.min(20)).min(MAX_BACKOFF_SECS));
                    if retry_at.is_some() {
                        crate::metrics::METRICS.mail_retries.inc();
                        tracing::warn!(mail = queued.id, attempt, error = %e, "mail delivery failed; will retry");
                    } else {
                        crate::metrics::METRICS.mail_failures.inc();
                        tracing::error!(mail = queued.id, attempt, error = %e, "mail delivery failed for good");
                    }
                    store
                        .mail_failed(queued.id, now(), e.to_string(), retry_at)
                        .await
                }
            };
            if let Err(e) = recorded {
                tracing::warn!(mail = queued.id, error = %e, "could not record a delivery");
            }
        }
        if batch.is_empty() {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::user::{Profile, SecurityLevel};

    fn user(id: i64, level: SecurityLevel, active: bool) -> User {
        User {
            id,
            email: format!("u{id}@example.com"),
            profile: Profile::default(),
            security_level: level,
            can_view_profiles: false,
            active,
            created_at: 0,
            updated_at: 0,
            version: 1,
        }
    }

    #[test]
    fn user_text_is_escaped_in_html_and_subjects_stay_one_line() {
        let n = Notice {
            kind: "message",
            action: "posted",
            project: Some("Site <b>"),
            task: Some("Fix\r\nBcc: x@y"),
            author: "Ann & Bob",
            text: Some("<script>alert(1)</script>\nsecond line"),
        };
        let (subject, text, html) = compose(&n);
        assert!(!subject.contains('\n') && !subject.contains('\r'));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;<br>"));
        assert!(html.contains("Ann &amp; Bob"));
        assert!(!html.contains("<script>"));
        assert!(text.contains("<script>"), "plain text is not HTML");
    }

    #[test]
    fn never_the_author_nor_the_removed_nor_the_blind() {
        let candidates = vec![
            user(1, SecurityLevel::User, true),
            user(2, SecurityLevel::User, true),
            user(3, SecurityLevel::User, false),
            user(4, SecurityLevel::Client, true),
            user(2, SecurityLevel::User, true),
        ];
        let n = Notice {
            kind: "task",
            action: "updated",
            project: None,
            task: Some("T"),
            author: "A",
            text: None,
        };
        let mails = mails_for(
            &candidates,
            1,
            |a| a.level != SecurityLevel::Client,
            |_| true,
            &n,
        );
        let to: Vec<_> = mails.iter().map(|m| m.recipient.as_str()).collect();
        assert_eq!(to, ["u2@example.com"]);
    }
}
