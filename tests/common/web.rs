//! A browser for the web pages (docs/web.md), without a browser: a client that keeps the
//! cookies the server sets, follows no redirect (the tests look at each 303), signs in
//! through `/signin` as a person would, and posts forms with the page's `csrf` token.

use std::sync::Mutex;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use super::{password_for, read, Resp, TestServer, ADMIN_EMAIL, ADMIN_PASSWORD};

/// The cookie that holds the API session id of a signed-in person.
pub const SESSION_COOKIE: &str = "__Host-vesper-session";
/// The sign-in form's own token, before there is a session.
pub const SIGN_IN_COOKIE: &str = "__Host-vesper-signin";

/// One person's browser: its cookies, by name.
pub struct Browser<'a> {
    pub server: &'a TestServer,
    client: reqwest::Client,
    cookies: Mutex<Vec<(String, String)>>,
}

impl TestServer {
    /// A browser with no cookie yet.
    pub fn browser(&self) -> Browser<'_> {
        let mut client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .redirect(reqwest::redirect::Policy::none());
        // A server reached by host name (`at_host`) is found at its address.
        if let Some(host) = &self.host {
            client = client.resolve(host, self.addr);
        }
        Browser {
            server: self,
            client: client.build().unwrap(),
            cookies: Mutex::new(Vec::new()),
        }
    }

    /// A browser signed in through `/signin` with this login and password.
    pub async fn browser_as(&self, email: &str, password: &str) -> Browser<'_> {
        let b = self.browser();
        let r = b.sign_in(email, password).await;
        assert_eq!(r.status, 303, "signing in {email}: {}", r.body);
        assert!(b.session_id().is_some(), "no session cookie for {email}");
        b
    }

    /// The admin's browser.
    pub async fn admin_browser(&self) -> Browser<'_> {
        self.browser_as(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// The browser of a user made by `TestServer::user` (password `password_for`).
    pub async fn user_browser(&self, email: &str) -> Browser<'_> {
        self.browser_as(email, &password_for(email)).await
    }
}

/// The `Set-Cookie` headers of an answer.
pub fn set_cookies(r: &Resp) -> Vec<String> {
    r.headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The `Set-Cookie` header that sets (or clears) this cookie, if any.
pub fn set_cookie(r: &Resp, name: &str) -> Option<String> {
    set_cookies(r)
        .into_iter()
        .find(|c| c.split(';').next().unwrap_or("").trim().split('=').next() == Some(name))
}

/// The `Location` of a redirect.
pub fn location(r: &Resp) -> &str {
    r.headers
        .get(LOCATION)
        .unwrap_or_else(|| panic!("no Location ({}): {}", r.status, r.body))
        .to_str()
        .unwrap()
}

/// The first `name="csrf" value="..."` of a page.
pub fn csrf_of(html: &str) -> Option<String> {
    attribute_after(html, "name=\"csrf\"", "value")
}

/// The value of attribute `attr` in the first tag that holds `marker`.
pub fn attribute_after(html: &str, marker: &str, attr: &str) -> Option<String> {
    let at = html.find(marker)?;
    let tag_start = html[..=at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let key = format!("{attr}=\"");
    let v = tag.find(&key)? + key.len();
    let end = tag[v..].find('"')?;
    Some(tag[v..v + end].to_owned())
}

/// The ids `N` of every `href="<prefix>N"` of a page (`/projects/`: the links to projects),
/// in order, each once.
pub fn linked_ids(html: &str, prefix: &str) -> Vec<i64> {
    let needle = format!("href=\"{prefix}");
    let mut ids = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(&needle) {
        rest = &rest[at + needle.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        // Only the object's own page: `/projects/7"`, not `/projects/7/edit"`.
        if !digits.is_empty() && rest[digits.len()..].starts_with('"') {
            let id: i64 = digits.parse().unwrap();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

impl Browser<'_> {
    fn cookie_header(&self) -> Option<String> {
        let cookies = self.cookies.lock().unwrap();
        if cookies.is_empty() {
            return None;
        }
        Some(
            cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    /// Keeps what the answer's `Set-Cookie` headers say (an empty value or `Max-Age=0`
    /// clears a cookie).
    fn keep_cookies(&self, r: &Resp) {
        let mut cookies = self.cookies.lock().unwrap();
        for c in set_cookies(r) {
            let pair = c.split(';').next().unwrap_or("");
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
            let cleared = value.is_empty() || c.contains("Max-Age=0");
            cookies.retain(|(k, _)| *k != name);
            if !cleared {
                cookies.push((name, value));
            }
        }
    }

    /// The value of a cookie this browser holds.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let cookies = self.cookies.lock().unwrap();
        cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    /// Sets a cookie by hand (another session's, an old one).
    pub fn set_cookie(&self, name: &str, value: &str) {
        let mut cookies = self.cookies.lock().unwrap();
        cookies.retain(|(k, _)| k != name);
        cookies.push((name.to_owned(), value.to_owned()));
    }

    /// The API session id the session cookie holds.
    pub fn session_id(&self) -> Option<String> {
        self.cookie(SESSION_COOKIE)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let req = match self.cookie_header() {
            Some(c) => req.header(COOKIE, c),
            None => req,
        };
        let r = read(req.send().await.unwrap()).await;
        self.keep_cookies(&r);
        r
    }

    /// GETs a page.
    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.client.get(self.server.https(path))).await
    }

    /// GETs a page with these request headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        let mut req = self.client.get(self.server.https(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    /// POSTs a url-encoded form exactly as given (no token added).
    pub async fn post_raw(&self, path: &str, pairs: &[(&str, &str)]) -> Resp {
        self.send(self.client.post(self.server.https(path)).form(pairs))
            .await
    }

    /// POSTs a body of this type as is.
    pub async fn post_body(&self, path: &str, content_type: &str, body: Vec<u8>) -> Resp {
        let req = self
            .client
            .post(self.server.https(path))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.send(req).await
    }

    /// POSTs a multipart form (a file upload) exactly as given.
    pub async fn post_multipart(&self, path: &str, form: reqwest::multipart::Form) -> Resp {
        self.send(self.client.post(self.server.https(path)).multipart(form))
            .await
    }

    /// This session's form token, as the frame of every page carries it.
    pub async fn csrf(&self) -> String {
        let r = self.get("/").await;
        assert_eq!(r.status, 200, "{}", r.body);
        csrf_of(&r.body).expect("a csrf token on the page")
    }

    /// POSTs a form with this session's token.
    pub async fn post(&self, path: &str, pairs: &[(&str, &str)]) -> Resp {
        let csrf = self.csrf().await;
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(pairs);
        self.post_raw(path, &all).await
    }

    /// Signs in through the form: GET `/signin` for its token and cookie, then POST.
    pub async fn sign_in(&self, login: &str, password: &str) -> Resp {
        self.sign_in_next(login, password, None).await
    }

    /// Signs in with a `next` field (where to go afterwards).
    pub async fn sign_in_next(&self, login: &str, password: &str, next: Option<&str>) -> Resp {
        let page = self.get("/signin").await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = csrf_of(&page.body).expect("a csrf token on the sign-in page");
        assert_eq!(
            self.cookie(SIGN_IN_COOKIE).as_deref(),
            Some(csrf.as_str()),
            "the sign-in cookie holds the form's token"
        );
        let mut pairs = vec![
            ("csrf", csrf.as_str()),
            ("login", login),
            ("password", password),
        ];
        if let Some(next) = next {
            pairs.push(("next", next));
        }
        self.post_raw("/signin", &pairs).await
    }
}
