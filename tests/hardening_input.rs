//! Hostile input (issue 10): control characters never echoed into an answer, invalid
//! UTF-8 refused rather than replaced, numbers and dates range-checked.
mod common;
use common::*;

/// Characters an answer must never echo: control characters and what XML cannot carry.
fn unprintable(c: char) -> bool {
    c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}'
}

/// A raw call: the URL's query string and the body go out byte for byte.
async fn raw(
    s: &TestServer,
    call: &str,
    query: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Resp {
    let url = format!("{}?{query}", s.api(call));
    let mut req = s.client.post(url).body(body);
    if let Some(ct) = content_type {
        req = req.header("Content-Type", ct);
    }
    read(req.send().await.unwrap()).await
}

/// Asserts the answer is a well-formed fail envelope (XML or JSON) whose texts hold no
/// unprintable character, and returns (code, field) of its error.
fn printable_failure(r: &Resp) -> (String, Option<String>) {
    let mut texts = Vec::new();
    let (code, field) = if r.body.starts_with('{') {
        let j = r.json();
        fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::String(s) => out.push(s.clone()),
                serde_json::Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
                serde_json::Value::Object(o) => o.iter().for_each(|(k, v)| {
                    out.push(k.clone());
                    collect(v, out)
                }),
                _ => {}
            }
        }
        collect(&j, &mut texts);
        (
            j["code"].as_str().unwrap_or_default().to_owned(),
            j["field"].as_str().map(str::to_owned),
        )
    } else {
        let doc = r.xml();
        for n in doc.descendants() {
            texts.extend(n.text().map(str::to_owned));
            texts.extend(n.attributes().map(|a| a.value().to_owned()));
        }
        let error = doc
            .root_element()
            .children()
            .find(|n| n.has_tag_name("error"))
            .unwrap_or_else(|| panic!("no error element: {}", r.body));
        (
            error.attribute("code").unwrap_or_default().to_owned(),
            error.attribute("field").map(str::to_owned),
        )
    };
    for t in texts {
        assert!(
            !t.chars().any(unprintable),
            "an unprintable character echoed: {t:?} in {:?}",
            r.body
        );
    }
    (code, field)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_in_names_are_never_echoed() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let q = |rest: &str| format!("sessionId={sid}&{rest}");
    // Every C0 control character and DEL, in a name at the top and nested, in XML and
    // JSON; each answer is well-formed and quotes the name without the character.
    for byte in (0u8..0x20).chain([0x7f]) {
        for name in [format!("a%{byte:02X}"), format!("project[na%{byte:02X}me]")] {
            for ret in ["", "&retType=json"] {
                let r = raw(
                    &s,
                    "projects/getList",
                    &q(&format!("{name}=1{ret}")),
                    None,
                    vec![],
                )
                .await;
                // Tab, newline, CR and DEL are text XML carries: such a name is accepted
                // (and ignored, as unknown).
                if [b'\t', b'\n', b'\r', 0x7f].contains(&byte) {
                    assert_eq!(r.status, 200, "{name}: {}", r.body);
                    continue;
                }
                assert_eq!(r.status, 400, "{name}: {}", r.body);
                let (code, field) = printable_failure(&r);
                assert_eq!(code, "invalid_argument", "{}", r.body);
                assert!(field.is_some_and(|f| f.contains("\\u{")), "{}", r.body);
            }
        }
    }
    // Names that are accepted but refused later are quoted the same way: an unknown
    // filter holding a tab, in a 422 that lists it.
    for ret in ["", "&retType=json"] {
        let r = raw(
            &s,
            "projects/getList",
            &q(&format!("filter[a%09b]=1{ret}")),
            None,
            vec![],
        )
        .await;
        assert_eq!(r.status, 422, "{}", r.body);
        printable_failure(&r);
        assert_eq!(r.error_fields(), ["filter[a\\u{9}b]"], "{}", r.body);
    }
    // The same in a urlencoded body and a multipart part name.
    let r = raw(
        &s,
        "projects/add",
        &q("project[name]=x"),
        Some("application/x-www-form-urlencoded"),
        b"b%1Bc=1".to_vec(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    printable_failure(&r);
    let body =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"filter[a\tb]\"\r\n\r\n1\r\n--XyZ--\r\n";
    let r = raw(
        &s,
        "projects/getList",
        &q("retType=json"),
        Some("multipart/form-data; boundary=XyZ"),
        body.to_vec(),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    printable_failure(&r);
    assert_eq!(r.error_fields(), ["filter[a\\u{9}b]"], "{}", r.body);
}

/// Nothing was stored by the refused calls.
async fn project_count(s: &TestServer, sid: &str) -> i64 {
    let r = s.call_json("projects/getList", &[("sessionId", sid)]).await;
    r.assert_ok();
    r.json()["total"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_refused_naming_the_field() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let base = format!("sessionId={sid}&retType=json");
    // In the query string and in a urlencoded body: the value's field is named.
    let r = raw(
        &s,
        "projects/add",
        &format!("{base}&project[name]=a%FFb"),
        None,
        vec![],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        printable_failure(&r),
        ("invalid_argument".into(), Some("project[name]".into()))
    );
    assert!(
        r.json()["error"].as_str().unwrap().contains("UTF-8"),
        "{}",
        r.body
    );
    let r = raw(
        &s,
        "projects/add",
        &base,
        Some("application/x-www-form-urlencoded"),
        b"project[name]=ok&project[description]=%C3%28".to_vec(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        printable_failure(&r),
        (
            "invalid_argument".into(),
            Some("project[description]".into())
        )
    );
    // Raw bytes that are not UTF-8 (not percent-encoded) in a body.
    let r = raw(
        &s,
        "projects/add",
        &base,
        Some("application/x-www-form-urlencoded"),
        b"project[name]=a\xFEb".to_vec(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(printable_failure(&r).1.as_deref(), Some("project[name]"));
    // In a multipart text part.
    let body =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"project[name]\"\r\n\r\na\xFFb\r\n--XyZ--\r\n";
    let r = raw(
        &s,
        "projects/add",
        &base,
        Some("multipart/form-data; boundary=XyZ"),
        body.to_vec(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(
        printable_failure(&r),
        ("invalid_argument".into(), Some("project[name]".into()))
    );
    // In a name: query string, urlencoded body and a multipart part's name.
    let r = raw(
        &s,
        "projects/add",
        &format!("{base}&project[name]=x&project[na%FFme]=y"),
        None,
        vec![],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(printable_failure(&r).0, "invalid_argument");
    let r = raw(
        &s,
        "projects/add",
        &format!("{base}&project[name]=x"),
        Some("application/x-www-form-urlencoded"),
        b"a%E2%82=1".to_vec(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(printable_failure(&r).0, "invalid_argument");
    let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"project[n\xFFame]\"\r\n\r\nab\r\n--XyZ--\r\n";
    let r = raw(
        &s,
        "projects/add",
        &format!("{base}&project[name]=x"),
        Some("multipart/form-data; boundary=XyZ"),
        body.to_vec(),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    printable_failure(&r);
    assert_eq!(project_count(&s, &sid).await, 0);
    // Valid UTF-8, including a literal U+FFFD, is still taken as sent.
    let r = raw(
        &s,
        "projects/add",
        &format!("{base}&project[name]=%C3%A9t%C3%A9%EF%BF%BD"),
        None,
        vec![],
    )
    .await;
    r.assert_ok();
    assert_eq!(r.json()["project"]["name"], "été\u{FFFD}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_and_dates_are_range_checked() {
    let s = TestServer::start().await;
    let sid = s.admin().await;
    let sid = sid.as_str();
    let project = s.as_caller(sid).project(&[("name", "P")]).await.to_string();
    let project = project.as_str();
    let add = |hours: &'static str| {
        let s = &s;
        async move {
            s.call_json(
                "activity/add",
                &[
                    ("sessionId", sid),
                    ("activity[projectId]", project),
                    ("activity[text]", "t"),
                    ("activity[hoursDone]", hours),
                ],
            )
            .await
        }
    };
    for hours in [
        "99999999999999999999999",
        "1000000.5",
        "-1",
        "-0.001",
        "1e7",
    ] {
        let r = add(hours).await;
        r.assert_fail(422, "validation_failed");
        assert_eq!(
            r.error_fields(),
            ["activity[hoursDone]"],
            "{hours}: {}",
            r.body
        );
    }
    for hours in ["1e400", "NaN", "inf", "-infinity", "12h"] {
        let r = add(hours).await;
        r.assert_fail(400, "invalid_argument");
        assert_eq!(r.json()["field"], "activity[hoursDone]", "{hours}");
    }
    for (hours, stored) in [
        ("1000000", 1_000_000.0),
        ("0", 0.0),
        ("-0", 0.0),
        ("2.5", 2.5),
    ] {
        let r = add(hours).await;
        r.assert_ok();
        let written = &r.json()["activity"]["hoursDone"];
        assert_eq!(written.as_f64(), Some(stored), "{hours}: {}", r.body);
        // -0 is written as 0, not "-0".
        assert!(!written.to_string().starts_with('-'), "{hours}: {}", r.body);
    }
    // The same on update.
    let r = add("1").await;
    let activity = id_of(&r.json()["activity"]).to_string();
    let r = s
        .call_json(
            "activity/update",
            &[
                ("sessionId", sid),
                ("activity[id]", activity.as_str()),
                ("activity[hoursDone]", "1e23"),
            ],
        )
        .await;
    r.assert_fail(422, "validation_failed");
    assert_eq!(r.error_fields(), ["activity[hoursDone]"]);

    // A task's estimatedTime takes the same bounds.
    let task = |extra: (&'static str, &'static str)| {
        let s = &s;
        async move {
            s.call_json(
                "tasks/add",
                &[
                    ("sessionId", sid),
                    ("task[name]", "T"),
                    ("task[projectId]", project),
                    extra,
                ],
            )
            .await
        }
    };
    for big in ["1000001", "1e23"] {
        let r = task(("task[estimatedTime]", big)).await;
        r.assert_fail(422, "validation_failed");
        assert_eq!(r.error_fields(), ["task[estimatedTime]"], "{}", r.body);
    }
    task(("task[estimatedTime]", "1000000")).await.assert_ok();
    // Whole numbers beyond 64 bits are the wrong type; out-of-range ones fail validation.
    let r = task(("task[priority]", "99999999999999999999999")).await;
    r.assert_fail(400, "invalid_argument");
    assert_eq!(r.json()["field"], "task[priority]");
    for (field, value) in [
        ("task[priority]", "9223372036854775807"),
        ("task[progress]", "101"),
        ("task[progress]", "-1"),
        ("task[status]", "-9223372036854775808"),
        ("task[flag]", "4"),
    ] {
        let r = task((field, value)).await;
        r.assert_fail(422, "validation_failed");
        assert_eq!(r.error_fields(), [field], "{value}: {}", r.body);
    }
    // Dates: years 0000 to 9999, the years `YYYY-MM-DD` can write.
    for date in ["+10000-01-01", "-0001-12-31", "+262143-01-01 00:00:00"] {
        let r = task(("task[startDate]", date)).await;
        r.assert_fail(400, "invalid_argument");
        assert_eq!(r.json()["field"], "task[startDate]", "{date}");
    }
    for (date, written) in [
        ("9999-12-31 23:59:59", "9999-12-31 23:59:59"),
        ("0000-01-01", "0000-01-01 00:00:00"),
    ] {
        let r = task(("task[startDate]", date)).await;
        r.assert_ok();
        assert_eq!(r.json()["task"]["startDate"], written, "{}", r.body);
    }
}
