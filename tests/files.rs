//! Files of activities (section 10 of the contract): attachFiles, getFilesList,
//! downloadFile, removeFile, the limits, safe names, who may download, durable blobs, the
//! start-up sweep, and a 50 MiB round trip through the real binary in bounded memory.
mod common;
use common::*;

use std::path::{Path, PathBuf};

use reqwest::multipart::{Form, Part};
use sha2::{Digest, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// An admin session, a project, a task in it and a message on the task.
async fn setup(s: &TestServer) -> (String, i64, i64, i64) {
    let sid = s.admin().await;
    let admin = s.as_caller(&sid);
    let p = admin.project(&[]).await;
    let t = admin.task(p, &[]).await;
    let a = admin.activity(&[("taskId", &t.to_string())]).await;
    (sid, p, t, a)
}

/// A multipart attachFiles form (JSON answers) with these file parts:
/// (field, file name, mime type, bytes).
fn form(sid: &str, activity: i64, parts: &[(&str, &str, &str, &[u8])]) -> Form {
    let mut f = Form::new()
        .percent_encode_noop()
        .text("sessionId", sid.to_owned())
        .text("activityId", activity.to_string())
        .text("retType", "json");
    for (field, name, mime, bytes) in parts {
        let part = Part::bytes(bytes.to_vec())
            .file_name(name.to_string())
            .mime_str(mime)
            .unwrap();
        f = f.part(field.to_string(), part);
    }
    f
}

async fn send_form(s: &TestServer, call: &str, form: Form) -> Resp {
    read(
        s.client
            .post(s.api(call))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// Attaches one file by multipart; returns its id.
async fn attach_one(s: &TestServer, sid: &str, activity: i64, name: &str, bytes: &[u8]) -> i64 {
    let r = send_form(
        s,
        "activity/attachFiles",
        form(
            sid,
            activity,
            &[("files[1]", name, "application/octet-stream", bytes)],
        ),
    )
    .await;
    r.assert_ok();
    r.json()["items"][0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Names of the regular files directly in a folder.
fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn blobs(s: &TestServer) -> Vec<String> {
    files_in(&s.dir.path().join("files"))
}

fn staged(s: &TestServer) -> Vec<String> {
    files_in(&s.dir.path().join("files").join("tmp"))
}

async fn download(
    s: &TestServer,
    sid: &str,
    id: i64,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = s
        .client
        .get(s.api("activity/downloadFile"))
        .query(&[("sessionId", sid), ("id", &id.to_string())]);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .unwrap()
}

fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 256) as u8).collect()
}

// ---- attachFiles ------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_files_takes_multipart_file_parts_and_returns_the_new_files() {
    let s = TestServer::start().await;
    let (sid, p, t, a) = setup(&s).await;
    let binary = sample(3000);
    let f = form(
        &sid,
        a,
        &[
            ("files[1][content]", "draft.txt", "text/plain", b"hello"),
            ("files[2]", "data.bin", "application/octet-stream", &binary),
        ],
    )
    .text("files[1][name]", "final.txt");
    let r = send_form(&s, "activity/attachFiles", f).await;
    r.assert_ok();
    let j = r.json();
    assert_eq!(j["count"], 2, "{j}");
    assert_eq!(j["total"], 2);
    let items = j["items"].as_array().unwrap();
    let first = &items[0];
    assert!(first["id"].is_string());
    assert_eq!(first["name"], "final.txt", "files[n][name] wins");
    assert_eq!(first["size"], 5);
    assert_eq!(first["mimeType"], "text/plain");
    assert_eq!(first["sha256"], sha256_hex(b"hello"));
    assert_eq!(first["activityId"], a);
    assert_eq!(first["taskId"], t);
    assert_eq!(first["projectId"], p);
    assert_eq!(first["ownerId"], 1);
    assert_eq!(first["createdAt"].as_str().unwrap().len(), 19);
    let second = &items[1];
    assert_eq!(
        second["name"], "data.bin",
        "the part's file name by default"
    );
    assert_eq!(second["size"], 3000);
    assert_eq!(second["sha256"], sha256_hex(&binary));
    assert_eq!(s.as_caller(&sid).files(&[]).await.total, 2);
    assert_eq!(blobs(&s).len(), 2);
    assert!(staged(&s).is_empty());

    // The same in XML: a list of file elements.
    let f = Form::new()
        .percent_encode_noop()
        .text("sessionId", sid.clone())
        .text("activityId", a.to_string())
        .part(
            "files[1][content]",
            Part::bytes(b"xml".to_vec()).file_name("x.txt"),
        );
    let r = send_form(&s, "activity/attachFiles", f).await;
    r.assert_ok();
    let doc = r.xml();
    let items = doc.descendants().find(|n| n.has_tag_name("items")).unwrap();
    assert_eq!(items.attribute("count"), Some("1"));
    assert_eq!(r.xml_text("name").as_deref(), Some("x.txt"));
    assert_eq!(
        r.xml_text("mimeType").as_deref(),
        Some("application/octet-stream")
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base64_content_in_a_form_encoded_body_is_attached() {
    let s = TestServer::start().await;
    let (sid, _, _, a) = setup(&s).await;
    let r = s
        .call_json(
            "activity/attachFiles",
            &[
                ("sessionId", &sid),
                ("activityId", &a.to_string()),
                ("files[1][name]", "hello.txt"),
                ("files[1][content]", "aGVsbG8gd29ybGQ="),
            ],
        )
        .await;
    r.assert_ok();
    let f = &r.json()["items"][0];
    assert_eq!(f["name"], "hello.txt");
    assert_eq!(f["size"], 11);
    assert_eq!(f["sha256"], sha256_hex(b"hello world"));
    let id: i64 = f["id"].as_str().unwrap().parse().unwrap();
    let d = download(&s, &sid, id, &[]).await;
    assert_eq!(d.status(), 200);
    assert_eq!(&d.bytes().await.unwrap()[..], b"hello world");

    // Not base64: 400 naming the field, nothing stored.
    let r = s
        .call_json(
            "activity/attachFiles",
            &[
                ("sessionId", &sid),
                ("activityId", &a.to_string()),
                ("files[1][content]", "***"),
            ],
        )
        .await;
    r.assert_fail(400, "invalid_argument");
    assert_eq!(s.as_caller(&sid).files(&[]).await.total, 1);
    assert_eq!(blobs(&s).len(), 1);
    assert!(staged(&s).is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_files_without_files_or_on_a_missing_activity_is_refused() {
    let s = TestServer::start().await;
    let (sid, _, _, a) = setup(&s).await;
    let r = s
        .call_json(
            "activity/attachFiles",
            &[("sessionId", &sid), ("activityId", &a.to_string())],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    let r = send_form(
        &s,
        "activity/attachFiles",
        form(&sid, 999, &[("files[1]", "a.txt", "text/plain", b"a")]),
    )
    .await;
    r.assert_fail(404, "not_found");
    assert_eq!(s.as_caller(&sid).files(&[]).await.total, 0);
    assert!(blobs(&s).is_empty());
    assert!(staged(&s).is_empty());
    s.stop().await;
}

// ---- getFilesList -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_files_list_filters_by_project_task_activity_owner_and_creation_time() {
    let s = TestServer::start().await;
    let (u, user) = s.user("member@example.com", 100, false).await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p1 = as_admin.project(&[("team", &u.to_string())]).await;
    let p2 = as_admin.project(&[("hidden", "1")]).await;
    let t1 = as_admin.task(p1, &[]).await;
    let t2 = as_admin.task(p2, &[]).await;
    let a1 = as_admin.activity(&[("taskId", &t1.to_string())]).await;
    let a2 = s
        .as_caller(&user)
        .activity(&[("projectId", &p1.to_string())])
        .await;
    let a3 = as_admin.activity(&[("taskId", &t2.to_string())]).await;
    let f1 = attach_one(&s, &sid, a1, "one", b"1").await;
    let f2 = attach_one(&s, &user, a2, "two", b"2").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let f3 = attach_one(&s, &sid, a3, "three", b"3").await;
    let later = s
        .call_json(
            "activity/getFilesList",
            &[("sessionId", &sid), ("filter[activityId]", &a3.to_string())],
        )
        .await
        .json()["items"][0]["createdAt"]
        .as_str()
        .unwrap()
        .to_owned();

    assert_eq!(as_admin.files(&[]).await.total_ids(), (3, vec![f1, f2, f3]));
    let by = |k: &'static str, v: String| (k, v);
    for ((key, value), expected) in [
        (by("filter[projectId]", p1.to_string()), vec![f1, f2]),
        (by("filter[taskId]", t1.to_string()), vec![f1]),
        (by("filter[activityId]", a2.to_string()), vec![f2]),
        (by("filter[ownerId]", u.to_string()), vec![f2]),
        (by("filter[createdFrom]", later.clone()), vec![f3]),
        (by("filter[createdBefore]", later.clone()), vec![f1, f2]),
    ] {
        let got = as_admin.files(&[(key, &value)]).await.total_ids();
        assert_eq!(got, (expected.len() as i64, expected), "{key}={value}");
    }
    // The member sees only the files of the project it is in.
    assert_eq!(
        s.as_caller(&user).files(&[]).await.total_ids(),
        (2, vec![f1, f2])
    );
    let r = s
        .call_json(
            "activity/getFilesList",
            &[("sessionId", &sid), ("filter[type]", "msg")],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["filter[type]"]);
    s.stop().await;
}

// ---- downloadFile -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_file_streams_the_exact_bytes_with_safe_headers() {
    let s = TestServer::start().await;
    let (sid, _, _, a) = setup(&s).await;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let r = send_form(
        &s,
        "activity/attachFiles",
        form(&sid, a, &[("files[1]", "report.html", "text/html", &bytes)]),
    )
    .await;
    r.assert_ok();
    let id: i64 = r.json()["items"][0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    // GET and POST both work.
    let d = download(&s, &sid, id, &[]).await;
    assert_eq!(d.status(), 200);
    assert_eq!(header(&d, "content-type"), "text/html");
    let cd = header(&d, "content-disposition");
    assert!(cd.starts_with("attachment;"), "{cd}");
    assert!(cd.contains("filename=\"report.html\""), "{cd}");
    assert!(cd.contains("filename*=UTF-8''report.html"), "{cd}");
    assert_eq!(header(&d, "content-length"), "70000");
    assert_eq!(header(&d, "x-content-type-options"), "nosniff");
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    assert_eq!(header(&d, "etag"), etag);
    assert_eq!(&d.bytes().await.unwrap()[..], &bytes[..]);
    let d = s
        .client
        .post(s.api("activity/downloadFile"))
        .form(&[("sessionId", sid.as_str()), ("id", &id.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 200);
    assert_eq!(&d.bytes().await.unwrap()[..], &bytes[..]);
    // Errors still come in the envelope.
    let r = s
        .call_json(
            "activity/downloadFile",
            &[("sessionId", &sid), ("id", "999")],
        )
        .await;
    r.assert_fail(404, "not_found");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_none_match_with_the_etag_answers_304_without_a_body() {
    let s = TestServer::start().await;
    let (sid, _, _, a) = setup(&s).await;
    let id = attach_one(&s, &sid, a, "a.txt", b"cache me").await;
    let etag = format!("\"{}\"", sha256_hex(b"cache me"));
    let d = download(&s, &sid, id, &[("If-None-Match", &etag)]).await;
    assert_eq!(d.status(), 304);
    assert_eq!(header(&d, "etag"), etag);
    assert!(d.bytes().await.unwrap().is_empty());
    let d = download(&s, &sid, id, &[("If-None-Match", "\"something-else\"")]).await;
    assert_eq!(d.status(), 200);
    assert_eq!(&d.bytes().await.unwrap()[..], b"cache me");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_answers_206_with_those_bytes_and_an_unsatisfiable_one_416() {
    let s = TestServer::start().await;
    let (sid, _, _, a) = setup(&s).await;
    let id = attach_one(&s, &sid, a, "a.txt", b"0123456789").await;
    let d = download(&s, &sid, id, &[("Range", "bytes=2-5")]).await;
    assert_eq!(d.status(), 206);
    assert_eq!(header(&d, "content-range"), "bytes 2-5/10");
    assert_eq!(header(&d, "content-length"), "4");
    assert_eq!(&d.bytes().await.unwrap()[..], b"2345");
    let d = download(&s, &sid, id, &[("Range", "bytes=-3")]).await;
    assert_eq!(d.status(), 206);
    assert_eq!(&d.bytes().await.unwrap()[..], b"789");
    let d = download(&s, &sid, id, &[("Range", "bytes=10-")]).await;
    assert_eq!(d.status(), 416);
    assert_eq!(header(&d, "content-range"), "bytes */10");
    let d = download(&s, &sid, id, &[("Range", "bytes=50-60")]).await;
    assert_eq!(d.status(), 416);
    s.stop().await;
}

// ---- removal ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_file_removes_the_row_and_the_blob() {
    let s = TestServer::start().await;
    let (sid, _, _, a) = setup(&s).await;
    let gone = attach_one(&s, &sid, a, "gone.txt", b"gone").await;
    let before = blobs(&s);
    let kept = attach_one(&s, &sid, a, "kept.txt", b"kept").await;
    let kept_blob: Vec<String> = blobs(&s)
        .into_iter()
        .filter(|b| !before.contains(b))
        .collect();
    let r = s
        .call_json(
            "activity/removeFile",
            &[("sessionId", &sid), ("id", &gone.to_string())],
        )
        .await;
    r.assert_ok();
    assert_eq!(r.json()["id"], gone.to_string());
    assert_eq!(
        s.as_caller(&sid).files(&[]).await.total_ids(),
        (1, vec![kept])
    );
    assert_eq!(blobs(&s), kept_blob, "only the removed file's blob is gone");
    let d = download(&s, &sid, gone, &[]).await;
    assert_eq!(d.status(), 404);
    s.call_json(
        "activity/removeFile",
        &[("sessionId", &sid), ("id", &gone.to_string())],
    )
    .await
    .assert_fail(404, "not_found");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_an_activity_a_task_or_a_project_removes_its_blobs() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[]).await;
    let keep_p = as_admin.project(&[]).await;
    let t1 = as_admin.task(p, &[]).await;
    let t2 = as_admin.task(p, &[]).await;
    let on_t1 = as_admin.activity(&[("taskId", &t1.to_string())]).await;
    let on_t2 = as_admin.activity(&[("taskId", &t2.to_string())]).await;
    let on_p = as_admin.activity(&[("projectId", &p.to_string())]).await;
    let kept = as_admin
        .activity(&[("projectId", &keep_p.to_string())])
        .await;
    let mut key_of = std::collections::HashMap::new();
    for a in [on_t1, on_t2, on_p, kept] {
        let before = blobs(&s);
        attach_one(&s, &sid, a, "f.txt", a.to_string().as_bytes()).await;
        let new: Vec<String> = blobs(&s)
            .into_iter()
            .filter(|b| !before.contains(b))
            .collect();
        assert_eq!(new.len(), 1);
        key_of.insert(a, new[0].clone());
    }
    let path = |a: i64| s.dir.path().join("files").join(&key_of[&a]);

    s.call_json(
        "activity/remove",
        &[("sessionId", &sid), ("id", &on_t1.to_string())],
    )
    .await
    .assert_ok();
    assert!(!path(on_t1).exists());
    assert!(path(on_t2).exists() && path(on_p).exists());

    s.call_json(
        "tasks/remove",
        &[("sessionId", &sid), ("id", &t2.to_string())],
    )
    .await
    .assert_ok();
    assert!(!path(on_t2).exists());
    assert!(path(on_p).exists());

    // A project takes its tasks' files too.
    let t3 = as_admin.task(p, &[]).await;
    let on_t3 = as_admin.activity(&[("taskId", &t3.to_string())]).await;
    let before = blobs(&s);
    attach_one(&s, &sid, on_t3, "g.txt", b"t3").await;
    let t3_blob: Vec<String> = blobs(&s)
        .into_iter()
        .filter(|b| !before.contains(b))
        .collect();
    s.call_json(
        "projects/remove",
        &[("sessionId", &sid), ("id", &p.to_string())],
    )
    .await
    .assert_ok();
    assert!(!path(on_p).exists());
    assert!(!s.dir.path().join("files").join(&t3_blob[0]).exists());
    assert_eq!(blobs(&s), vec![key_of[&kept].clone()]);
    assert_eq!(as_admin.files(&[]).await.total, 1);
    s.stop().await;
}

// ---- limits -----------------------------------------------------------------------------

async fn small_server() -> TestServer {
    TestServer::start_with(|c| {
        c.max_file_bytes = 1024;
        c.max_files_per_request = 2;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_the_size_limit_is_refused_with_413_and_nothing_is_stored() {
    let s = small_server().await;
    let (sid, _, _, a) = setup(&s).await;
    let big = sample(2048);
    let r = send_form(
        &s,
        "activity/attachFiles",
        form(
            &sid,
            a,
            &[
                ("files[1]", "ok.txt", "text/plain", b"small"),
                ("files[2]", "big.bin", "application/octet-stream", &big),
            ],
        ),
    )
    .await;
    r.assert_fail(413, "too_large");
    assert_eq!(s.as_caller(&sid).files(&[]).await.total, 0);
    assert!(blobs(&s).is_empty(), "{:?}", blobs(&s));
    assert!(staged(&s).is_empty(), "{:?}", staged(&s));

    // The same as base64 in a form.
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &big);
    let r = s
        .call_json(
            "activity/attachFiles",
            &[
                ("sessionId", &sid),
                ("activityId", &a.to_string()),
                ("files[1][content]", "c21hbGw="),
                ("files[2][content]", &encoded),
            ],
        )
        .await;
    r.assert_fail(413, "too_large");
    assert_eq!(s.as_caller(&sid).files(&[]).await.total, 0);
    assert!(blobs(&s).is_empty());
    assert!(staged(&s).is_empty());

    // Exactly at the limit is fine.
    attach_one(&s, &sid, a, "edge.bin", &sample(1024)).await;
    assert_eq!(s.as_caller(&sid).files(&[]).await.total, 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_files_than_allowed_in_one_request_are_refused_with_413_and_nothing_is_stored() {
    let s = small_server().await;
    let (sid, _, _, a) = setup(&s).await;
    let r = send_form(
        &s,
        "activity/attachFiles",
        form(
            &sid,
            a,
            &[
                ("files[1]", "1.txt", "text/plain", b"1"),
                ("files[2]", "2.txt", "text/plain", b"2"),
                ("files[3]", "3.txt", "text/plain", b"3"),
            ],
        ),
    )
    .await;
    r.assert_fail(413, "too_large");
    assert_eq!(s.as_caller(&sid).files(&[]).await.total, 0);
    assert!(blobs(&s).is_empty(), "{:?}", blobs(&s));
    assert!(staged(&s).is_empty(), "{:?}", staged(&s));

    let r = s
        .call_json(
            "activity/attachFiles",
            &[
                ("sessionId", &sid),
                ("activityId", &a.to_string()),
                ("files[1][content]", "MQ=="),
                ("files[2][content]", "Mg=="),
                ("files[3][content]", "Mw=="),
            ],
        )
        .await;
    r.assert_fail(413, "too_large");
    assert_eq!(s.as_caller(&sid).files(&[]).await.total, 0);
    assert!(blobs(&s).is_empty());
    assert!(staged(&s).is_empty());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_part_sent_to_any_other_call_is_refused_with_400() {
    let s = TestServer::start().await;
    let (sid, p, _, _) = setup(&s).await;
    let f = Form::new()
        .percent_encode_noop()
        .text("sessionId", sid.clone())
        .text("retType", "json")
        .text("activity[projectId]", p.to_string())
        .text("activity[text]", "with a file")
        .part(
            "files[1]",
            Part::bytes(b"sneaky".to_vec()).file_name("s.txt"),
        );
    send_form(&s, "activity/add", f)
        .await
        .assert_fail(400, "bad_request");
    let f = Form::new()
        .percent_encode_noop()
        .text("sessionId", sid.clone())
        .part("avatar", Part::bytes(b"x".to_vec()).file_name("me.png"));
    send_form(&s, "users/getAll", f)
        .await
        .assert_fail(400, "bad_request");
    let r = s
        .call_json("activity/getList", &[("sessionId", &sid)])
        .await;
    let total = r.json()["total"].as_i64().unwrap();
    assert_eq!(total, 1, "no activity was added");
    assert!(blobs(&s).is_empty());
    assert!(staged(&s).is_empty());
    s.stop().await;
}

// ---- names ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_file_name_is_stored_clean_and_served_safely() {
    let s = TestServer::start().await;
    let (sid, _, _, a) = setup(&s).await;
    // A raw U+0001 is text XML 1.0 cannot carry (and not a valid header character), so
    // it is refused with 400 wherever it comes (section 5), and nothing is stored.
    let with_nul_like = "../../etc/pa\"ss\u{1}wd résumé.txt";
    let r = send_form(
        &s,
        "activity/attachFiles",
        form(
            &sid,
            a,
            &[("files[1]", with_nul_like, "text/plain", b"data")],
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s
        .call_json(
            "activity/attachFiles",
            &[
                ("sessionId", &sid),
                ("activityId", &a.to_string()),
                ("files[1][name]", with_nul_like),
                ("files[1][content]", "ZGF0YQ=="),
            ],
        )
        .await;
    r.assert_fail(400, "invalid_argument");
    assert_eq!(s.as_caller(&sid).files(&[]).await.total, 0);
    assert!(blobs(&s).is_empty() && staged(&s).is_empty());

    // Folders, quotes, a control character a header may carry (tab) and non-ASCII text.
    let hostile = "../../etc/pa\"ss\twd résumé.txt";
    let r = send_form(
        &s,
        "activity/attachFiles",
        form(&sid, a, &[("files[1]", hostile, "text/plain", b"data")]),
    )
    .await;
    r.assert_ok();
    let f = &r.json()["items"][0];
    let name = f["name"].as_str().unwrap().to_owned();
    assert!(!name.contains('/') && !name.contains('\\'), "{name}");
    assert!(!name.contains(".."), "{name}");
    assert!(!name.chars().any(char::is_control), "{name}");
    assert!(name.ends_with("wd résumé.txt"), "{name}");
    let id: i64 = f["id"].as_str().unwrap().parse().unwrap();
    // XML carries it well-formed.
    let r = s
        .call(
            "activity/getFilesList",
            &[("sessionId", &sid), ("filter[activityId]", &a.to_string())],
        )
        .await;
    assert_eq!(r.xml_text("name"), Some(name.clone()));

    let d = download(&s, &sid, id, &[]).await;
    assert_eq!(d.status(), 200);
    let cd = header(&d, "content-disposition").to_owned();
    assert!(cd.is_ascii(), "{cd}");
    assert!(!cd.chars().any(|c| c.is_ascii_control()), "{cd}");
    assert!(!cd.contains('/') && !cd.contains('\\'), "{cd}");
    // attachment; filename="<no quotes inside>"; filename*=UTF-8''<percent-encoded>
    let rest = cd.strip_prefix("attachment; filename=\"").expect(&cd);
    let (fallback, rest) = rest.split_once('"').expect(&cd);
    assert!(!fallback.contains('"'), "{cd}");
    let encoded = rest.strip_prefix("; filename*=UTF-8''").expect(&cd);
    let mut decoded = Vec::new();
    let raw = encoded.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            decoded.push(u8::from_str_radix(&encoded[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            assert!(
                raw[i].is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&raw[i]),
                "{cd}"
            );
            decoded.push(raw[i]);
            i += 1;
        }
    }
    assert_eq!(String::from_utf8(decoded).unwrap(), name);
    assert_eq!(&d.bytes().await.unwrap()[..], b"data");
    // Stored under a server-made key, never the client's name.
    for b in blobs(&s) {
        assert!(b.chars().all(|c| c.is_ascii_hexdigit()), "{b}");
    }
    s.stop().await;
}

// ---- who may download -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_download_a_file_of_an_activity_hidden_from_clients() {
    let s = TestServer::start().await;
    let (c, client) = s.user("client@example.com", 200, false).await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[("team", &c.to_string())]).await;
    let ps = p.to_string();
    let hidden = as_admin
        .activity(&[("projectId", &ps), ("hideFromClients", "1")])
        .await;
    let shown = as_admin.activity(&[("projectId", &ps)]).await;
    let secret = attach_one(&s, &sid, hidden, "secret.txt", b"secret").await;
    let open = attach_one(&s, &sid, shown, "open.txt", b"open").await;
    let d = download(&s, &client, secret, &[]).await;
    assert_eq!(d.status(), 404);
    assert!(d.text().await.unwrap().contains("not_found"));
    let d = download(&s, &client, open, &[]).await;
    assert_eq!(d.status(), 200);
    assert_eq!(&d.bytes().await.unwrap()[..], b"open");
    assert_eq!(
        s.as_caller(&client).files(&[]).await.total_ids(),
        (1, vec![open])
    );
    s.call_json(
        "activity/removeFile",
        &[("sessionId", &client), ("id", &secret.to_string())],
    )
    .await
    .assert_fail(404, "not_found");
    assert_eq!(as_admin.files(&[]).await.total, 2);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_download_list_or_remove_a_file() {
    let s = TestServer::start().await;
    let (_, stranger) = s.user("stranger@example.com", 150, false).await;
    let (sid, _, _, a) = setup(&s).await;
    let id = attach_one(&s, &sid, a, "a.txt", b"private").await;
    let d = download(&s, &stranger, id, &[]).await;
    assert_eq!(d.status(), 404);
    assert_eq!(
        s.as_caller(&stranger).files(&[]).await.total_ids(),
        (0, vec![])
    );
    s.call_json(
        "activity/removeFile",
        &[("sessionId", &stranger), ("id", &id.to_string())],
    )
    .await
    .assert_fail(404, "not_found");
    let r = send_form(
        &s,
        "activity/attachFiles",
        form(&stranger, a, &[("files[1]", "b.txt", "text/plain", b"b")]),
    )
    .await;
    r.assert_fail(404, "not_found");
    assert_eq!(
        s.as_caller(&sid).files(&[]).await.total_ids(),
        (1, vec![id])
    );
    assert_eq!(blobs(&s).len(), 1);
    assert!(staged(&s).is_empty());
    // Without a session at all: 401.
    let d = s
        .client
        .get(s.api("activity/downloadFile"))
        .query(&[("id", id.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), 401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_cannot_remove_another_users_file() {
    let s = TestServer::start().await;
    let (u, user) = s.user("member@example.com", 100, false).await;
    let sid = s.admin().await;
    let as_admin = s.as_caller(&sid);
    let p = as_admin.project(&[("team", &u.to_string())]).await;
    let a = as_admin.activity(&[("projectId", &p.to_string())]).await;
    let id = attach_one(&s, &sid, a, "a.txt", b"admin's").await;
    let d = download(&s, &user, id, &[]).await;
    assert_eq!(d.status(), 200);
    s.call_json(
        "activity/removeFile",
        &[("sessionId", &user), ("id", &id.to_string())],
    )
    .await
    .assert_fail(403, "forbidden");
    let r = send_form(
        &s,
        "activity/attachFiles",
        form(&user, a, &[("files[1]", "b.txt", "text/plain", b"b")]),
    )
    .await;
    r.assert_fail(403, "forbidden");
    assert_eq!(as_admin.files(&[]).await.total_ids(), (1, vec![id]));
    assert_eq!(blobs(&s).len(), 1);
    assert!(staged(&s).is_empty());
    s.stop().await;
}

// ---- durability and the sweep -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blob_is_in_place_under_its_key_once_attach_files_answers() {
    let s = TestServer::start().await;
    let (sid, _, _, a) = setup(&s).await;
    let bytes = sample(5000);
    let id = attach_one(&s, &sid, a, "a.bin", &bytes).await;
    let keys = blobs(&s);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert!(keys[0].len() >= 32 && keys[0].chars().all(|c| c.is_ascii_hexdigit()));
    let on_disk = std::fs::read(s.dir.path().join("files").join(&keys[0])).unwrap();
    assert_eq!(on_disk, bytes);
    assert!(staged(&s).is_empty(), "nothing left in tmp");
    assert_eq!(
        s.as_caller(&sid).files(&[]).await.total_ids(),
        (1, vec![id])
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_sweeps_stray_blobs_and_unfinished_uploads_and_keeps_real_ones() {
    let data = tempfile::tempdir().unwrap();
    let path: PathBuf = data.path().to_path_buf();
    let s = TestServer::start_with(|c| c.data_dir = path.clone()).await;
    let (sid, _, _, a) = setup(&s).await;
    let id = attach_one(&s, &sid, a, "real.txt", b"real bytes").await;
    let files = path.join("files");
    let real = files_in(&files);
    assert_eq!(real.len(), 1);
    s.stop().await;

    let stray = files.join("0123456789abcdef0123456789abcdef");
    let unfinished = files.join("tmp").join("fedcba9876543210fedcba9876543210");
    std::fs::write(&stray, b"orphan").unwrap();
    std::fs::write(&unfinished, b"half an upload").unwrap();

    let s = TestServer::start_with(|c| c.data_dir = path.clone()).await;
    assert!(!stray.exists(), "the orphan blob is swept");
    assert!(!unfinished.exists(), "the unfinished upload is swept");
    assert_eq!(files_in(&files), real, "the real blob stays");
    let sid = s.admin().await;
    let d = download(&s, &sid, id, &[]).await;
    assert_eq!(d.status(), 200);
    assert_eq!(&d.bytes().await.unwrap()[..], b"real bytes");
    s.stop().await;
}

// ---- 50 MiB through the real binary -----------------------------------------------------

const BIG: u64 = 50 * 1024 * 1024;

/// The peak resident memory of a process, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// The server binary as a child process; killed when dropped.
struct Child {
    child: std::process::Child,
    port: u16,
    _out: tempfile::NamedTempFile,
    _err: tempfile::NamedTempFile,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Child {
    fn url(&self, call: &str) -> String {
        format!("https://127.0.0.1:{}/api/v2/service/{call}", self.port)
    }
}

async fn spawn_binary(data_dir: &Path) -> Child {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_vesper"))
        .env_remove("VESPER_ADMIN_EMAIL")
        .env_remove("VESPER_DATABASE_URL")
        .env_remove("VESPER_CONFIG")
        .env("VESPER_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap())
        .spawn()
        .unwrap();
    let running = Child {
        child,
        port,
        _out: out,
        _err: err,
    };
    let c = client();
    for _ in 0..400 {
        if c.get(format!("https://127.0.0.1:{port}/health"))
            .send()
            .await
            .is_ok()
        {
            return running;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("vesper did not start");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_50_mib_file_goes_up_and_down_byte_identical_in_bounded_server_memory() {
    use tokio::io::AsyncWriteExt;

    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("data");
    let server = spawn_binary(&data_dir).await;
    let pid = server.child.id();
    let c = client();

    // A 50 MiB file of varied bytes, hashed as it is written.
    let source = work.path().join("big.bin");
    let mut hasher = Sha256::new();
    {
        let mut f = tokio::fs::File::create(&source).await.unwrap();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut chunk = vec![0u8; 1024 * 1024];
        for _ in 0..(BIG / chunk.len() as u64) {
            for b in chunk.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            hasher.update(&chunk);
            f.write_all(&chunk).await.unwrap();
        }
        f.flush().await.unwrap();
    }
    let expected = hex::encode(hasher.finalize());

    let json = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 200);
        r.json::<serde_json::Value>().await.unwrap()
    };
    let signed_in = json(
        c.post(server.url("get/authentication/signIn"))
            .form(&[
                ("login", ADMIN_EMAIL),
                ("password", ADMIN_PASSWORD),
                ("retType", "json"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let sid = signed_in["sessionId"].as_str().unwrap().to_owned();
    let project = json(
        c.post(server.url("post/projects/add"))
            .form(&[
                ("sessionId", sid.as_str()),
                ("project[name]", "Big"),
                ("retType", "json"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let pid_str = project["project"]["id"].as_str().unwrap().to_owned();
    let act = json(
        c.post(server.url("post/activity/add"))
            .form(&[
                ("sessionId", sid.as_str()),
                ("activity[projectId]", &pid_str),
                ("activity[type]", "file"),
                ("retType", "json"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    let activity_id = act["activity"]["id"].as_str().unwrap().to_owned();

    let baseline = vm_hwm_kib(pid);

    // Upload, streamed from disk.
    let file = tokio::fs::File::open(&source).await.unwrap();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
    let part = Part::stream_with_length(body, BIG)
        .file_name("big.bin")
        .mime_str("application/octet-stream")
        .unwrap();
    let form = Form::new()
        .percent_encode_noop()
        .text("sessionId", sid.clone())
        .text("activityId", activity_id)
        .text("retType", "json")
        .part("files[1][content]", part);
    let up = json(
        c.post(server.url("post/activity/attachFiles"))
            .multipart(form)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let meta = &up["items"][0];
    assert_eq!(meta["size"], BIG);
    assert_eq!(meta["sha256"], expected.as_str());
    let file_id = meta["id"].as_str().unwrap().to_owned();
    let after_upload = vm_hwm_kib(pid);

    // Download, streamed to disk while hashing.
    let mut resp = c
        .get(server.url("get/activity/downloadFile"))
        .query(&[("sessionId", sid.as_str()), ("id", &file_id)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-length"].to_str().unwrap(),
        BIG.to_string()
    );
    let target = work.path().join("down.bin");
    let mut out = tokio::fs::File::create(&target).await.unwrap();
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        hasher.update(&chunk);
        received += chunk.len() as u64;
        out.write_all(&chunk).await.unwrap();
    }
    out.flush().await.unwrap();
    assert_eq!(received, BIG);
    assert_eq!(hex::encode(hasher.finalize()), expected);
    assert_eq!(
        std::fs::metadata(&target).unwrap().len(),
        BIG,
        "written to disk"
    );
    let after_download = vm_hwm_kib(pid);

    println!(
        "vesper VmHWM: baseline {baseline} KiB, after upload {after_upload} KiB, \
         after download {after_download} KiB (file {} KiB)",
        BIG / 1024
    );
    let limit = baseline + 40 * 1024;
    assert!(
        after_upload < limit && after_download < limit,
        "peak memory grew with the file: baseline {baseline} KiB, after upload \
         {after_upload} KiB, after download {after_download} KiB"
    );
    drop(server);
}

/// An activity removed by another request while files are attached to it: the attach
/// answers 200 (it came first; the remove takes its files) or 404, never 500, and no row
/// is left naming the removed activity. schemathesis found the 500: the file rows were
/// refused by their foreign key once the activity was gone.
#[tokio::test]
async fn attaching_to_an_activity_removed_meanwhile_is_404_not_500() {
    let s = TestServer::start().await;
    let (sid, _, t, _) = setup(&s).await;
    let admin = s.as_caller(&sid);
    let bytes = vec![7u8; 256 * 1024];
    for _ in 0..20 {
        let a = admin.activity(&[("taskId", &t.to_string())]).await;
        let parts = [(
            "files[0][content]",
            "f.bin",
            "application/octet-stream",
            &bytes[..],
        )];
        let attach = send_form(&s, "activity/attachFiles", form(&sid, a, &parts));
        let id = a.to_string();
        let args = [("sessionId", sid.as_str()), ("id", id.as_str())];
        let remove = s.call_json("activity/remove", &args);
        let (attached, removed) = tokio::join!(attach, remove);
        assert_eq!(removed.status, 200, "{}", removed.body);
        assert!(
            matches!(attached.status, 200 | 404),
            "{} {}",
            attached.status,
            attached.body
        );
    }
    assert_eq!(
        admin.files(&[]).await.total,
        0,
        "no file outlives its activity"
    );
}
