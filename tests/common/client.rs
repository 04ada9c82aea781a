//! The typed test client: one helper per API call, answering ids, objects, lists and
//! refusals as values, so that the suites say what they check instead of building
//! envelopes. Everything goes in JSON; the raw calls of the harness (`TestServer::call`,
//! `get`, ...) remain for what is about the wire itself (XML, methods, headers).

use serde_json::Value;

use super::{read, Resp, TestServer};

/// The kinds of objects the API writes, by their service and envelope key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Project,
    Task,
    Activity,
    Group,
    User,
}

impl Kind {
    /// The service in the call's path.
    pub fn service(self) -> &'static str {
        match self {
            Kind::Project => "projects",
            Kind::Task => "tasks",
            Kind::Activity => "activity",
            Kind::Group => "projectsgroups",
            Kind::User => "users",
        }
    }

    /// The object's key in requests (`project[name]`) and answers (`"project": {...}`).
    pub fn key(self) -> &'static str {
        match self {
            Kind::Project => "project",
            Kind::Task => "task",
            Kind::Activity => "activity",
            Kind::Group => "group",
            Kind::User => "user",
        }
    }

    fn call(self, method: &str) -> String {
        format!("{}/{method}", self.service())
    }
}

/// A refused call: its status, code, the fields a 422 names, and the body as sent.
#[derive(Debug, Clone)]
pub struct Fail {
    pub status: u16,
    pub code: String,
    pub fields: Vec<String>,
    pub body: String,
}

impl Fail {
    /// The refusal a non-200 answer holds; panics unless it is a fail envelope.
    fn of(r: &Resp) -> Fail {
        let code = r.json()["code"].as_str().unwrap_or_default().to_owned();
        r.assert_fail(r.status, &code);
        Fail {
            status: r.status,
            code,
            fields: r.error_fields(),
            body: r.body.clone(),
        }
    }

    /// Asserts the refusal's status and code.
    pub fn assert(&self, status: u16, code: &str) -> &Self {
        assert_eq!(
            (self.status, self.code.as_str()),
            (status, code),
            "{}",
            self.body
        );
        self
    }
}

/// One page of a list: its total, the ids of its rows in order, and the rows.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub total: i64,
    pub ids: Vec<i64>,
    pub items: Vec<Value>,
}

impl Listed {
    /// The total and the ids, to compare at once.
    pub fn total_ids(&self) -> (i64, Vec<i64>) {
        (self.total, self.ids.clone())
    }

    /// The ids and the total, to compare at once.
    pub fn ids_total(&self) -> (Vec<i64>, i64) {
        (self.ids.clone(), self.total)
    }
}

/// A signed-in caller of the server.
pub struct Caller<'a> {
    pub server: &'a TestServer,
    pub sid: String,
}

impl TestServer {
    /// The caller signed in with this session.
    pub fn as_caller(&self, sid: &str) -> Caller<'_> {
        Caller {
            server: self,
            sid: sid.to_owned(),
        }
    }
}

/// An object's id, sent as a string (or, for some, a number).
pub fn id_of(object: &Value) -> i64 {
    match &object["id"] {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("id {s} in {object}")),
        Value::Number(n) => n.as_i64().unwrap(),
        _ => panic!("no id in {object}"),
    }
}

/// `kind[name]=value` for each attribute; what follows a bracket in the name stays after
/// it (`team[]` becomes `project[team][]`, `team[0]` `task[team][0]`).
pub fn attributes(kind: Kind, attrs: &[(&str, &str)]) -> Vec<(String, String)> {
    attrs
        .iter()
        .map(|(name, value)| {
            let (base, rest) = name.split_at(name.find('[').unwrap_or(name.len()));
            (format!("{}[{base}]{rest}", kind.key()), (*value).to_owned())
        })
        .collect()
}

impl Caller<'_> {
    /// Attaches one file to an activity as a client would, a multipart `attachFiles`;
    /// answers the file's id.
    pub async fn attach(&self, activity: i64, name: &str, bytes: &[u8]) -> i64 {
        let part = reqwest::multipart::Part::bytes(bytes.to_vec())
            .file_name(name.to_owned())
            .mime_str("application/octet-stream")
            .unwrap();
        let form = reqwest::multipart::Form::new()
            .text("sessionId", self.sid.clone())
            .text("activityId", activity.to_string())
            .text("retType", "json")
            .part("files[1]", part);
        let s = self.server;
        let r = read(
            s.client
                .post(s.api("activity/attachFiles"))
                .multipart(form)
                .send()
                .await
                .unwrap(),
        )
        .await;
        r.assert_ok();
        id_of(&r.json()["items"][0])
    }

    /// Any call in JSON with the session and these arguments.
    pub async fn call(&self, call: &str, args: &[(&str, &str)]) -> Resp {
        let mut all = vec![("sessionId", self.sid.as_str())];
        all.extend_from_slice(args);
        self.server.call_json(call, &all).await
    }

    async fn call_owned(&self, call: &str, args: &[(String, String)]) -> Resp {
        let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.call(call, &args).await
    }

    /// The answer's object, or the refusal.
    fn object(kind: Kind, r: Resp) -> Result<Value, Fail> {
        if r.status != 200 {
            return Err(Fail::of(&r));
        }
        r.assert_ok();
        Ok(r.json()[kind.key()].clone())
    }

    /// The answer of `add` with these attributes (unprefixed: `("name", "Site")`), as
    /// sent: for the tests about the answer itself.
    pub async fn add_answer(&self, kind: Kind, attrs: &[(&str, &str)]) -> Resp {
        self.call_owned(&kind.call("add"), &attributes(kind, attrs))
            .await
    }

    /// The answer of `update` of the object `id`, as sent.
    pub async fn update_answer(&self, kind: Kind, id: i64, attrs: &[(&str, &str)]) -> Resp {
        let mut args = attributes(kind, &[("id", &id.to_string())]);
        args.extend(attributes(kind, attrs));
        self.call_owned(&kind.call("update"), &args).await
    }

    /// The answer of `getById`, as sent.
    pub async fn get_answer(&self, kind: Kind, id: i64) -> Resp {
        self.call(&kind.call("getById"), &[("id", &id.to_string())])
            .await
    }

    /// `add` with these attributes: the new object, or the refusal.
    pub async fn try_add(&self, kind: Kind, attrs: &[(&str, &str)]) -> Result<Value, Fail> {
        Self::object(kind, self.add_answer(kind, attrs).await)
    }

    /// Adds an object and answers its id.
    pub async fn add(&self, kind: Kind, attrs: &[(&str, &str)]) -> i64 {
        let added = self.try_add(kind, attrs).await;
        id_of(&added.unwrap_or_else(|f| panic!("{kind:?} not added: {}", f.body)))
    }

    /// `update` of the object `id` with these attributes.
    pub async fn try_update(
        &self,
        kind: Kind,
        id: i64,
        attrs: &[(&str, &str)],
    ) -> Result<Value, Fail> {
        Self::object(kind, self.update_answer(kind, id, attrs).await)
    }

    /// Updates an object and answers it.
    pub async fn update(&self, kind: Kind, id: i64, attrs: &[(&str, &str)]) -> Value {
        let updated = self.try_update(kind, id, attrs).await;
        updated.unwrap_or_else(|f| panic!("{kind:?} {id} not updated: {}", f.body))
    }

    pub async fn try_get(&self, kind: Kind, id: i64) -> Result<Value, Fail> {
        Self::object(kind, self.get_answer(kind, id).await)
    }

    /// The object as this caller reads it.
    pub async fn get(&self, kind: Kind, id: i64) -> Value {
        let found = self.try_get(kind, id).await;
        found.unwrap_or_else(|f| panic!("{kind:?} {id} not read: {}", f.body))
    }

    pub async fn try_remove(&self, kind: Kind, id: i64) -> Result<(), Fail> {
        let r = self
            .call(&kind.call("remove"), &[("id", &id.to_string())])
            .await;
        if r.status != 200 {
            return Err(Fail::of(&r));
        }
        r.assert_ok();
        Ok(())
    }

    pub async fn remove(&self, kind: Kind, id: i64) {
        let removed = self.try_remove(kind, id).await;
        removed.unwrap_or_else(|f| panic!("{kind:?} {id} not removed: {}", f.body))
    }

    /// A list call (`getList`, `getFilesList`, ...) with these arguments; its `count` is
    /// checked against its rows.
    pub async fn try_list_by(&self, call: &str, args: &[(&str, &str)]) -> Result<Listed, Fail> {
        let r = self.call(call, args).await;
        if r.status != 200 {
            return Err(Fail::of(&r));
        }
        r.assert_ok();
        let j = r.json();
        let items = j["items"]
            .as_array()
            .unwrap_or_else(|| panic!("no items: {}", r.body))
            .clone();
        assert_eq!(j["count"], items.len(), "{}", r.body);
        Ok(Listed {
            total: j["total"].as_i64().unwrap(),
            ids: items.iter().map(id_of).collect(),
            items,
        })
    }

    pub async fn list_by(&self, call: &str, args: &[(&str, &str)]) -> Listed {
        let listed = self.try_list_by(call, args).await;
        listed.unwrap_or_else(|f| panic!("{call} refused: {}", f.body))
    }

    /// `getList` of a kind.
    pub async fn try_list(&self, kind: Kind, args: &[(&str, &str)]) -> Result<Listed, Fail> {
        self.try_list_by(&kind.call("getList"), args).await
    }

    pub async fn list(&self, kind: Kind, args: &[(&str, &str)]) -> Listed {
        self.list_by(&kind.call("getList"), args).await
    }

    /// `getAll` of a kind: every row, the total being their number.
    pub async fn all(&self, kind: Kind, args: &[(&str, &str)]) -> Vec<Value> {
        let listed = self.list_by(&kind.call("getAll"), args).await;
        assert_eq!(listed.total, listed.items.len() as i64, "{kind:?} getAll");
        listed.items
    }

    // ---- the suites' usual objects -----------------------------------------------------

    /// Adds a project, named "Site" unless a name is given.
    pub async fn project(&self, attrs: &[(&str, &str)]) -> i64 {
        self.add(Kind::Project, &named("Site", attrs)).await
    }

    /// Adds a task to the project, named "Build" unless a name is given.
    pub async fn task(&self, project: i64, attrs: &[(&str, &str)]) -> i64 {
        let project = project.to_string();
        let mut all = named("Build", attrs);
        all.push(("projectId", &project));
        self.add(Kind::Task, &all).await
    }

    /// Adds an activity.
    pub async fn activity(&self, attrs: &[(&str, &str)]) -> i64 {
        self.add(Kind::Activity, attrs).await
    }

    /// Adds a project group.
    pub async fn group(&self, name: &str) -> i64 {
        self.add(Kind::Group, &[("name", name)]).await
    }

    /// A project, a task in it and a message on the task.
    pub async fn project_task_activity(&self) -> (i64, i64, i64) {
        let p = self.project(&[]).await;
        let t = self.task(p, &[]).await;
        let a = self
            .activity(&[("taskId", &t.to_string()), ("text", "hello")])
            .await;
        (p, t, a)
    }

    /// The active user with this email (`users/getByEmail`).
    pub async fn user_by_email(&self, email: &str) -> Value {
        let r = self.call("users/getByEmail", &[("email", email)]).await;
        Self::object(Kind::User, r).unwrap_or_else(|f| panic!("no user {email}: {}", f.body))
    }

    /// `getFilesList` with these arguments.
    pub async fn files(&self, args: &[(&str, &str)]) -> Listed {
        self.list_by("activity/getFilesList", args).await
    }
}

/// The attributes with `("name", default)` first unless they name the object.
fn named<'a>(default: &'a str, attrs: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = Vec::new();
    if !attrs.iter().any(|(k, _)| *k == "name") {
        all.push(("name", default));
    }
    all.extend_from_slice(attrs);
    all
}
