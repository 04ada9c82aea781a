//! SQL both backends share: the access rules of `domain::policy` compiled to conditions
//! and totals, the team-mates query, and the filters of every list. Placeholders are `?`;
//! the PostgreSQL backend numbers them.

use crate::domain::policy::{self, Action, Actor, Kind, Rule};
use crate::domain::user::SecurityLevel;
use crate::domain::work::STATUS_DONE;
use crate::domain::WorkspaceId;
use crate::store::driver::Dialect;
use crate::store::{Filter, Result, StoreError, UserScope};

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Int(i64),
    Text(String),
}

/// Where a placeholder's value comes from. Statements are written from the caller's
/// rules and the kinds of the filters only, never from a value: a list of the same shape
/// takes the same text (kept by `store::driver::page`), and its values are found again
/// from these by `Bindings`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    Workspace,
    Caller,
    /// The value of the filter at this position (`filter_value`).
    Filter(usize),
}

/// What a statement's `Bind`s are read from.
#[derive(Debug, Clone, Copy)]
pub struct Bindings<'a> {
    pub ws: WorkspaceId,
    pub caller: i64,
    pub filters: &'a [Filter],
}

impl<'a> Bindings<'a> {
    /// The values of a list asked by `actor`.
    pub fn new(ws: WorkspaceId, actor: &Actor, filters: &'a [Filter]) -> Self {
        Bindings {
            ws,
            caller: actor.user_id,
            filters,
        }
    }

    pub fn values(&self, binds: &[Bind]) -> Result<Vec<Param>> {
        binds.iter().map(|b| self.value(*b)).collect()
    }

    fn value(&self, bind: Bind) -> Result<Param> {
        match bind {
            Bind::Workspace => Ok(Param::Int(self.ws.0)),
            Bind::Caller => Ok(Param::Int(self.caller)),
            // A bind to a filter without a value, or past the filters, is a statement
            // written wrong: refused, never run with a stand-in value.
            Bind::Filter(i) => self.filters.get(i).and_then(filter_value).ok_or_else(|| {
                StoreError::Internal(anyhow::anyhow!("no value for the filter bound at {i}"))
            }),
        }
    }
}

/// The value a filter's placeholder takes, or none for a filter without one.
pub fn filter_value(f: &Filter) -> Option<Param> {
    Some(match f {
        Filter::Active => return None,
        Filter::Name(v) => like(&v.to_lowercase()),
        Filter::Type(v) => Param::Text(v.clone()),
        Filter::HideOlderThanDays(d) => days_ago(*d),
        Filter::ProjectId(v)
        | Filter::TaskId(v)
        | Filter::ActivityId(v)
        | Filter::ParentId(v)
        | Filter::GroupId(v)
        | Filter::OwnerId(v)
        | Filter::AssignedTo(v)
        | Filter::Status(v)
        | Filter::StartedFrom(v)
        | Filter::StartedBefore(v)
        | Filter::DeadlineFrom(v)
        | Filter::DeadlineBefore(v)
        | Filter::ProgressLessThan(v)
        | Filter::ProgressMoreThan(v)
        | Filter::CreatedFrom(v)
        | Filter::CreatedBefore(v)
        | Filter::UpdatedFrom(v)
        | Filter::UpdatedBefore(v) => Param::Int(*v),
    })
}

// ---- visibility, compiled from the rules of domain::policy ----------------------------

// Team tests are written `x IN (SELECT ... WHERE user_id = me)`, not as EXISTS on the
// row: the subquery does not depend on the row, so the database runs it once per
// statement and each row is a lookup in its result. Counting a user's view of a project
// of 100,000 tasks took 50 ms with a subquery per row.

/// The caller's project-team test on `project_id`; its one placeholder takes the caller.
pub fn in_project_team(project_id: &str) -> String {
    format!("{project_id} IN (SELECT pt.project_id FROM project_team pt WHERE pt.user_id = ?)")
}

/// The users who share a project or task team with user `me`, as a subquery: those a
/// caller who does not see every user sees, besides themself.
pub fn team_mates(me: impl std::fmt::Display) -> String {
    format!(
        "SELECT b.user_id FROM project_team a JOIN project_team b \
         ON a.project_id = b.project_id WHERE a.user_id = {me} \
         UNION SELECT b.user_id FROM task_team a JOIN task_team b ON a.task_id = b.task_id \
         WHERE a.user_id = {me}"
    )
}

/// A compiled condition. Constants stay apart so that `And` and `Or` fold them away.
#[derive(Debug, Clone, PartialEq)]
enum Cond {
    True,
    False,
    /// SQL and where the values of its placeholders come from, in order. The caller is
    /// one of those values, never part of the text: a statement's text is the same for
    /// every caller asking the same, so it can be kept prepared.
    Sql(String, Vec<Bind>),
}

impl Cond {
    fn of(known: bool) -> Cond {
        if known {
            Cond::True
        } else {
            Cond::False
        }
    }

    /// The SQL and its values.
    fn piece(self) -> Piece {
        match self {
            Cond::True => ("TRUE".into(), Vec::new()),
            Cond::False => ("FALSE".into(), Vec::new()),
            Cond::Sql(s, values) => (s, values),
        }
    }
}

fn all_of(parts: impl Iterator<Item = Cond>) -> Cond {
    let mut sql = Vec::new();
    let mut values = Vec::new();
    for part in parts {
        match part {
            Cond::True => {}
            Cond::False => return Cond::False,
            Cond::Sql(s, v) => {
                sql.push(s);
                values.extend(v);
            }
        }
    }
    match sql.len() {
        0 => Cond::True,
        1 => Cond::Sql(sql.remove(0), values),
        _ => Cond::Sql(format!("({})", sql.join(" AND ")), values),
    }
}

fn any_of(parts: impl Iterator<Item = Cond>) -> Cond {
    let mut sql = Vec::new();
    let mut values = Vec::new();
    for part in parts {
        match part {
            Cond::True => return Cond::True,
            Cond::False => {}
            Cond::Sql(s, v) => {
                sql.push(s);
                values.extend(v);
            }
        }
    }
    match sql.len() {
        0 => Cond::False,
        1 => Cond::Sql(sql.remove(0), values),
        _ => Cond::Sql(format!("({})", sql.join(" OR ")), values),
    }
}

/// What a partial compilation of a task rule already knows, for all the tasks of one
/// project (see `project_asked_first`); `None`: decided per row.
#[derive(Debug, Clone, Copy, Default)]
struct Known {
    project_visible: Option<bool>,
    in_project_team: Option<bool>,
    not_hidden: Option<bool>,
    /// The task-team test is a lookup of each task tested, not a set of the caller's team
    /// rows: for a page whose generic plan runs (`Conditions::plan_fixed`), which would
    /// guess how many rows the set reads.
    team_by_task: bool,
}

/// `rule` as SQL over the alias of its kind: projects `p`, tasks `t`, activities `a`,
/// users `u`. What `known` settles is a constant; a condition that does not apply to the
/// kind is FALSE, as `policy::decide` answers.
fn compile(actor: &Actor, rule: Rule, kind: Kind, known: Known) -> Cond {
    let see = |kind| {
        compile(
            actor,
            policy::rule(actor, kind, Action::See),
            kind,
            Known::default(),
        )
    };
    let sql = |s: String| Cond::Sql(s, Vec::new());
    // A test of the caller: each placeholder takes their id.
    let mine = |s: String| {
        let values = vec![Bind::Caller; s.matches('?').count()];
        Cond::Sql(s, values)
    };
    match (rule, kind) {
        (Rule::Everything, _) => Cond::True,
        (Rule::Nothing, _) => Cond::False,
        (Rule::And(all), _) => all_of(all.iter().map(|r| compile(actor, *r, kind, known))),
        (Rule::Or(any), _) => any_of(any.iter().map(|r| compile(actor, *r, kind, known))),

        (Rule::Owner, Kind::Project) => mine("p.owner_id = ?".into()),
        (Rule::Owner, Kind::Task) => mine("t.owner_id = ?".into()),
        (Rule::Owner, Kind::Activity) => mine("a.owner_id = ?".into()),
        (Rule::InProjectTeam, Kind::Project) => mine(in_project_team("p.id")),
        (Rule::InProjectTeam, Kind::Task) => known
            .in_project_team
            .map_or_else(|| mine(in_project_team("t.project_id")), Cond::of),
        (Rule::InTaskTeam, Kind::Task) if known.team_by_task => mine(
            "EXISTS (SELECT 1 FROM task_team tt WHERE tt.task_id = t.id AND tt.user_id = ?)"
                .into(),
        ),
        (Rule::InTaskTeam, Kind::Task) => {
            mine("t.id IN (SELECT tt.task_id FROM task_team tt WHERE tt.user_id = ?)".into())
        }
        (Rule::NotHidden, Kind::Project) => sql("p.hidden = 0".into()),
        (Rule::NotHidden, Kind::Task) => known
            .not_hidden
            .map_or_else(|| sql("t.hidden = 0".into()), Cond::of),
        (Rule::ProjectVisible, Kind::Project) => see(Kind::Project),
        (Rule::ProjectVisible, Kind::Task) => match known.project_visible {
            Some(v) => Cond::of(v),
            None => match see(Kind::Project) {
                Cond::True => Cond::True,
                Cond::False => sql("t.project_id IS NULL".into()),
                Cond::Sql(p, values) => Cond::Sql(
                    format!(
                        "(t.project_id IS NULL OR t.project_id IN (SELECT p.id FROM projects p WHERE {p}))"
                    ),
                    values,
                ),
            },
        },
        (Rule::NotHiddenFromClients, Kind::Activity) => sql("a.hide_from_clients = 0".into()),
        (Rule::Message, Kind::Activity) => sql("a.type = 'msg'".into()),
        (Rule::TargetVisible, Kind::Activity) => match (see(Kind::Task), see(Kind::Project)) {
            (Cond::True, Cond::True) => Cond::True,
            (task, project) => {
                let ((task, mut values), (project, project_values)) = (task.piece(), project.piece());
                values.extend(project_values);
                Cond::Sql(
                    format!(
                        "(CASE WHEN a.task_id IS NOT NULL \
                         THEN EXISTS (SELECT 1 FROM tasks t WHERE t.id = a.task_id AND {task}) \
                         ELSE EXISTS (SELECT 1 FROM projects p WHERE p.id = a.project_id AND {project}) END)"
                    ),
                    values,
                )
            }
        },
        (Rule::Itself, Kind::User) => mine("u.id = ?".into()),
        (Rule::TeamMate, Kind::User) => mine(format!("u.id IN ({})", team_mates("?"))),
        _ => Cond::False,
    }
}

/// The users a list in `scope` holds, as SQL over `users u`, and its values.
pub fn users_in_scope(scope: UserScope) -> Piece {
    match scope {
        UserScope::All => ("TRUE".into(), Vec::new()),
        // The scope names only the caller: the rule of those who do not see every user
        // consults nothing else.
        UserScope::SelfAndTeamMates(me) => {
            let actor = Actor {
                user_id: me,
                level: SecurityLevel::User,
                can_view_profiles: false,
            };
            compile(
                &actor,
                policy::SELF_AND_TEAM_MATES,
                Kind::User,
                Known::default(),
            )
            .piece()
        }
    }
}

// ---- filters ---------------------------------------------------------------------------

/// A `WHERE` clause under construction.
pub struct Conditions {
    pub sql: Vec<String>,
    pub values: Vec<Bind>,
    /// A cheaper statement giving the same total, when one exists (see
    /// `counted_task_total`), with its own values.
    pub counted: Option<Piece>,
    /// The page's plan is the same for every value it takes, so PostgreSQL may run its
    /// generic plan instead of planning it at each run (see `task_conditions`).
    pub plan_fixed: bool,
}

impl Conditions {
    /// The rows of the workspace (`{alias}.workspace_id`) that the caller may see.
    fn new(alias: &str, visible: Cond) -> Self {
        Conditions::with_term(format!("{alias}.workspace_id = ?"), visible)
    }

    /// The same, with the workspace's term written out (its one placeholder).
    fn with_term(workspace_term: String, visible: Cond) -> Self {
        let (visible, visible_values) = visible.piece();
        let mut values = vec![Bind::Workspace];
        values.extend(visible_values);
        Conditions {
            sql: vec![workspace_term, visible],
            values,
            counted: None,
            plan_fixed: false,
        }
    }

    /// The values the count statement of `list_sql` takes.
    pub fn count_values(&self) -> &[Bind] {
        self.counted.as_ref().map_or(&self.values, |(_, v)| v)
    }

    pub fn push(&mut self, sql: impl Into<String>, value: impl Into<Option<Bind>>) {
        self.sql.push(sql.into());
        if let Some(v) = value.into() {
            self.values.push(v);
        }
    }

    pub fn clause(&self) -> String {
        self.sql.join(" AND ")
    }
}

pub fn like(s: &str) -> Param {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    Param::Text(format!("%{escaped}%"))
}

pub fn days_ago(days: i64) -> Param {
    Param::Int(crate::domain::now() - days.saturating_mul(86_400))
}

/// Filters shared by projects and tasks, over the alias `x` and its team table; `i` is
/// the filter's position.
pub fn shared_filter(c: &mut Conditions, x: &str, team: &str, (i, f): (usize, &Filter)) -> bool {
    let value = Bind::Filter(i);
    match f {
        Filter::GroupId(_) => c.push(format!("{x}.group_id = ?"), value),
        Filter::OwnerId(_) => c.push(format!("{x}.owner_id = ?"), value),
        Filter::Name(_) => c.push(format!("LOWER({x}.name) LIKE ? ESCAPE '\\'"), value),
        Filter::AssignedTo(_) => c.push(team.to_string(), value),
        Filter::Active => c.push(format!("{x}.status <> {STATUS_DONE}"), None),
        Filter::Status(_) => c.push(format!("{x}.status = ?"), value),
        Filter::HideOlderThanDays(_) => c.push(
            format!("NOT ({x}.status = {STATUS_DONE} AND {x}.closed_at < ?)"),
            value,
        ),
        Filter::CreatedFrom(_) => c.push(format!("{x}.created_at >= ?"), value),
        Filter::CreatedBefore(_) => c.push(format!("{x}.created_at < ?"), value),
        Filter::UpdatedFrom(_) => c.push(format!("{x}.updated_at >= ?"), value),
        Filter::UpdatedBefore(_) => c.push(format!("{x}.updated_at < ?"), value),
        _ => return false,
    }
    true
}

pub fn unsupported(f: &Filter) -> StoreError {
    StoreError::Internal(anyhow::anyhow!("filter {f:?} does not apply to this list"))
}

/// The statements of a list: its page, whose rows each end with the list's total, and the
/// total alone, for when the page has no row to carry it.
pub struct ListSql {
    /// Takes the count's values (`Conditions::count_values`), then the conditions'
    /// (`Conditions::values`), then the window's.
    pub page: String,
    /// Takes the count's values.
    pub count: String,
}

/// The statements of a list, the page ending in `window` (`Dialect::window`). The total
/// is a column of the page, an uncorrelated subquery that both databases run once per
/// statement: one statement where a page and its count were two (on PostgreSQL, one
/// message of the snapshot's fewer). With `ids_first`, the page's ids are chosen before its
/// columns are read: PostgreSQL computes the columns' subqueries (teams, parent names) for
/// the rows an OFFSET skips too, 27 ms for page 50 of a 10,000-task project instead of
/// 1 ms (docs/performance.md).
pub fn list_sql(
    table_alias: &str,
    columns: &str,
    c: &Conditions,
    ids_first: bool,
    window: &str,
) -> ListSql {
    let clause = c.clause();
    let alias = table_alias.rsplit(' ').next().unwrap_or(table_alias);
    let count = match &c.counted {
        Some((sql, _)) => sql.clone(),
        None => format!("SELECT COUNT(*) FROM {table_alias} WHERE {clause}"),
    };
    let columns = format!("{columns}, ({count})");
    let window = format!("WHERE {clause} ORDER BY {alias}.id {window}");
    let page = if ids_first {
        format!(
            "SELECT {columns} FROM {table_alias} WHERE {alias}.id IN \
             (SELECT {alias}.id FROM {table_alias} {window}) ORDER BY {alias}.id"
        )
    } else {
        format!("SELECT {columns} FROM {table_alias} {window}")
    };
    ListSql { page, count }
}

/// The two statements of a list read page by page (getAll), each page a read of its own
/// so that nothing is held between pages: first how many rows match and the highest id
/// among them, together; then a page, by id, of the rows after one id and up to the
/// highest counted, taking the condition values then `after`, `last` and the page size.
pub fn keyset_sql(table_alias: &str, columns: &str, c: &Conditions) -> (String, String) {
    let clause = c.clause();
    let alias = table_alias.rsplit(' ').next().unwrap_or(table_alias);
    (
        format!("SELECT COUNT(*), COALESCE(MAX({alias}.id), 0) FROM {table_alias} WHERE {clause}"),
        format!(
            "SELECT {columns} FROM {table_alias} WHERE {clause} \
             AND {alias}.id > ? AND {alias}.id <= ? ORDER BY {alias}.id LIMIT ?"
        ),
    )
}

/// The conditions of a project list: visibility, then each filter.
pub fn project_conditions(actor: &Actor, filters: &[Filter]) -> Result<Conditions> {
    let see = policy::rule(actor, Kind::Project, Action::See);
    let mut c = Conditions::new("p", compile(actor, see, Kind::Project, Known::default()));
    for f in filters.iter().enumerate() {
        let team = "p.id IN (SELECT x.project_id FROM project_team x WHERE x.user_id = ?)";
        if !shared_filter(&mut c, "p", team, f) {
            return Err(unsupported(f.1));
        }
    }
    Ok(c)
}

/// What a list of one project's tasks learns of that project before its statements are
/// written (`project_asked_first`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProjectFacts {
    pub visible: bool,
    pub in_team: bool,
}

impl From<Option<ProjectFacts>> for Known {
    fn from(facts: Option<ProjectFacts>) -> Self {
        Known {
            project_visible: facts.map(|f| f.visible),
            in_project_team: facts.map(|f| f.in_team),
            not_hidden: None,
            team_by_task: false,
        }
    }
}

/// The position of the one project filter of a task list whose project's facts are read
/// first, when the caller's task rule depends on the project (`ProjectFacts`, from
/// `projects::facts_by_ids` and the project rule of `domain::policy`). Settled first,
/// the rule's project parts are constants in the list's statements, and what remains
/// decides the plan: an external outside the project's team is left with the tasks they
/// own or whose team they are in, looked up by those indexes (`task_visible`), where a
/// condition per row walked every task of the project for the few they see (16 req/s
/// for a project of 100,000 tasks, docs/performance.md).
pub fn project_asked_first(actor: &Actor, filters: &[Filter]) -> Option<usize> {
    if !policy::rule(actor, Kind::Task, Action::See).needs_project() {
        return None;
    }
    let mut projects = project_filters(filters);
    match (projects.next(), projects.next()) {
        (Some(project), None) => Some(project),
        _ => None,
    }
}

/// The positions of the project filters.
fn project_filters(filters: &[Filter]) -> impl Iterator<Item = usize> + '_ {
    filters
        .iter()
        .enumerate()
        .filter_map(|(i, f)| matches!(f, Filter::ProjectId(_)).then_some(i))
}

/// The conditions of a task list: visibility, then each filter. `facts` are those of
/// the project `project_asked_first` names, when it names one.
pub fn task_conditions(
    actor: &Actor,
    filters: &[Filter],
    facts: Option<ProjectFacts>,
    dialect: Dialect,
) -> Result<Conditions> {
    let known = Known::from(facts);
    let rule = policy::rule(actor, Kind::Task, Action::See);
    let counted = counted_task_total(actor, filters, known, dialect);
    // On PostgreSQL, a list of one project, at most active, whose project is settled has
    // one plan for any caller and project: its page walks the project's index in id
    // order, testing the rule on each task, or, where the rule comes to the caller's own
    // tasks, reads them from the owner and task-team indexes and takes them from the
    // primary key in id order. PostgreSQL planned both at every run where one user owns
    // every task (0.2 - 0.5 ms of planning against 0.1 - 0.4 ms of execution at 1,000,000
    // tasks; docs/performance.md); they now run their generic plans (`GENERIC_PLANS`),
    // with the task-team test a lookup per task, which a guess at the caller's team
    // cannot turn into a read of every team row (111 ms where one other user is in every
    // task's team).
    let one_project = dialect == Dialect::Postgres && facts.is_some() && counted.is_some();
    let visible = task_visible(
        rule,
        Known {
            team_by_task: one_project,
            ..known
        },
        actor,
        dialect,
    );
    // A rule settled to a constant (a caller in the project's team, or one who may not
    // see it) leaves a page as an admin's, which PostgreSQL already runs generically, or
    // none.
    let plan_fixed = one_project && matches!(visible.cond, Cond::Sql(..));
    let mut c = Conditions::with_term(visible.workspace_term().into(), visible.cond);
    for (i, f) in filters.iter().enumerate() {
        let team = "t.id IN (SELECT x.task_id FROM task_team x WHERE x.user_id = ?)";
        if shared_filter(&mut c, "t", team, (i, f)) {
            continue;
        }
        let value = Bind::Filter(i);
        match f {
            Filter::ProjectId(_) => c.push("t.project_id = ?", value),
            Filter::ParentId(_) => c.push("t.parent_id = ?", value),
            Filter::StartedFrom(_) => c.push("t.start_date >= ?", value),
            Filter::StartedBefore(_) => c.push("t.start_date < ?", value),
            Filter::DeadlineFrom(_) => c.push("t.end_date >= ?", value),
            Filter::DeadlineBefore(_) => c.push("t.end_date < ?", value),
            Filter::ProgressLessThan(_) => c.push("t.progress < ?", value),
            Filter::ProgressMoreThan(_) => c.push("t.progress > ?", value),
            other => return Err(unsupported(other)),
        }
    }
    c.counted = counted;
    c.plan_fixed = plan_fixed;
    Ok(c)
}

/// What a task rule comes to once `known` is applied.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Folded {
    Const(bool),
    /// The caller's own tasks: those they own, those whose team they are in, or both.
    Own {
        owner: bool,
        team: bool,
    },
    /// A condition on anything else.
    Open,
}

fn fold(rule: Rule, known: Known) -> Folded {
    use Folded::{Const, Open, Own};
    let settled = |fact: Option<bool>| fact.map_or(Open, Const);
    match rule {
        Rule::Everything => Const(true),
        Rule::Nothing => Const(false),
        Rule::Owner => Own {
            owner: true,
            team: false,
        },
        Rule::InTaskTeam => Own {
            owner: false,
            team: true,
        },
        Rule::InProjectTeam => settled(known.in_project_team),
        Rule::ProjectVisible => settled(known.project_visible),
        Rule::NotHidden => settled(known.not_hidden),
        Rule::Or(any) => any
            .iter()
            .map(|r| fold(*r, known))
            .fold(Const(false), |a, b| match (a, b) {
                (Const(true), _) | (_, Const(true)) => Const(true),
                (Const(false), x) | (x, Const(false)) => x,
                (Own { owner, team }, Own { owner: o, team: t }) => Own {
                    owner: owner || o,
                    team: team || t,
                },
                _ => Open,
            }),
        Rule::And(all) => all
            .iter()
            .map(|r| fold(*r, known))
            .fold(Const(true), |a, b| match (a, b) {
                (Const(false), _) | (_, Const(false)) => Const(false),
                (Const(true), x) | (x, Const(true)) => x,
                _ => Open,
            }),
        _ => Open,
    }
}

/// A task rule as SQL over tasks `t`.
struct TaskVisibility {
    cond: Cond,
    /// The condition is the set of the caller's own tasks, to drive the statement.
    own: bool,
    /// The set is every task the caller owns or is in the team of, whose totals are
    /// kept in `own_task_counts`.
    owned_or_team: bool,
}

impl TaskVisibility {
    /// The statement's workspace term. Every task index but the parent's and the
    /// project's starts with the workspace; the unary plus keeps them all from being
    /// chosen over the caller's own tasks, which SQLite's planner, without statistics,
    /// would otherwise do. On SQLite the project's index starts with the project and then
    /// the id, so a list of one project looks each own task up in it (SQLite's migration
    /// 0008); PostgreSQL looks them up by primary key, which measured faster there.
    fn workspace_term(&self) -> &'static str {
        if self.own {
            "+t.workspace_id = ?"
        } else {
            "t.workspace_id = ?"
        }
    }
}

/// The task rule under `known` as SQL over tasks `t`. When it comes to the caller's own
/// tasks, they are a set looked up through the owner and task-team indexes, not a
/// condition tested on each task the other filters leave (see `project_asked_first`).
///
/// On PostgreSQL the set is an array, `t.id = ANY(ARRAY(...))`: the primary key's index
/// then takes its ids in order and a page stops at its 25th task, where `IN` joined and
/// sorted every one of them (an external's 1,000 at 1,000,000 tasks: 4.9 ms against 0.37
/// ms, docs/performance.md). SQLite has no arrays, and its `IN` list is already walked in
/// order.
fn task_visible(rule: Rule, known: Known, actor: &Actor, dialect: Dialect) -> TaskVisibility {
    let Folded::Own { owner, team } = fold(rule, known) else {
        return TaskVisibility {
            cond: compile(actor, rule, Kind::Task, known),
            own: false,
            owned_or_team: false,
        };
    };
    let (mut sets, mut values) = (Vec::new(), Vec::new());
    if owner {
        sets.push("SELECT x.id FROM tasks x WHERE x.workspace_id = ? AND x.owner_id = ?");
        values.extend([Bind::Workspace, Bind::Caller]);
    }
    if team {
        sets.push("SELECT x.task_id FROM task_team x WHERE x.user_id = ?");
        values.push(Bind::Caller);
    }
    let sets = sets.join(" UNION ALL ");
    let cond = match dialect {
        Dialect::Sqlite => format!("t.id IN ({sets})"),
        Dialect::Postgres => format!("t.id = ANY(ARRAY({sets}))"),
    };
    TaskVisibility {
        cond: Cond::Sql(cond, values),
        own: true,
        owned_or_team: owner && team,
    }
}

/// The total of a task list filtered at most by project and by being active, taken from
/// `task_counts` (kept by triggers on `tasks`, migration 0004) instead of counting every
/// task of the project: 3.7 ms for a project of 100,000 tasks, the whole cost of such a
/// list. Derived from the caller's task rule with the project's facts settled
/// (`project_asked_first`): what remains is, for not hidden and for hidden tasks apart,
/// everything (a kept count), nothing (0) or a condition per task (counted over those
/// tasks only). A user outside a project's team, for one, gets the kept count of its
/// tasks not hidden plus a count of its hidden ones they own or are in the team of.
/// A rule with nothing about the project (an admin's) takes any project filters.
///
/// Other lists count their rows.
fn counted_task_total(
    actor: &Actor,
    filters: &[Filter],
    known: Known,
    dialect: Dialect,
) -> Option<Piece> {
    let mut projects = Vec::new();
    let mut active = false;
    for (i, f) in filters.iter().enumerate() {
        match f {
            Filter::ProjectId(_) => projects.push(Bind::Filter(i)),
            Filter::Active => active = true,
            _ => return None,
        }
    }
    let rule = policy::rule(actor, Kind::Task, Action::See);
    let per_project = rule.needs_project();
    // Settled only for a list of one project, whose facts hold for all its tasks.
    if per_project && known.in_project_team.is_none() {
        return None;
    }
    let total = CountedTotal {
        actor,
        rule,
        projects: &projects,
        active,
        dialect,
    };
    let (sql, values) = total.count(known);
    Some((format!("SELECT CAST({sql} AS BIGINT)"), values))
}

/// SQL text and where the values of its placeholders come from, in order.
pub type Piece = (String, Vec<Bind>);

/// The parts of `counted_task_total`.
struct CountedTotal<'a> {
    actor: &'a Actor,
    rule: Rule,
    /// The project filters' values.
    projects: &'a [Bind],
    active: bool,
    dialect: Dialect,
}

impl CountedTotal<'_> {
    /// The total of tasks of the project once nothing about the project is left open.
    fn count(&self, known: Known) -> Piece {
        let when = |not_hidden| {
            let known = Known {
                not_hidden,
                ..known
            };
            task_visible(self.rule, known, self.actor, self.dialect)
        };
        let (shown, hidden) = (when(Some(true)), when(Some(false)));
        match (&shown.cond, &hidden.cond) {
            (Cond::True, Cond::True) => self.kept(None),
            (Cond::False, Cond::False) => ("0".into(), Vec::new()),
            // One count of both kinds of task.
            (Cond::Sql(..), Cond::Sql(..)) => self.counted(None, when(None)),
            _ => {
                let parts: Vec<Piece> = [(false, shown), (true, hidden)]
                    .into_iter()
                    .filter_map(|(h, visible)| match visible.cond {
                        Cond::True => Some(self.kept(Some(h))),
                        Cond::False => None,
                        Cond::Sql(..) => Some(self.counted(Some(h), visible)),
                    })
                    .collect();
                let sql = parts
                    .iter()
                    .map(|(s, _)| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" + ");
                (sql, parts.into_iter().flat_map(|(_, v)| v).collect())
            }
        }
    }

    /// A sum of kept counts of the project's tasks (`task_counts`), of hidden tasks or
    /// not hidden ones when `hidden` says.
    fn kept(&self, hidden: Option<bool>) -> Piece {
        self.summed(
            "task_counts WHERE workspace_id = ?",
            vec![Bind::Workspace],
            hidden,
        )
    }

    /// A sum of the caller's kept counts of the tasks they own or are in the team of
    /// (`own_task_counts`), of hidden tasks or not hidden ones when `hidden` says: a few
    /// rows, where counting looked up each of those tasks (1,000 for the benchmark's
    /// external at 1,000,000 tasks: 0.7 ms).
    fn own_kept(&self, hidden: Option<bool>) -> Piece {
        self.summed(
            "own_task_counts WHERE workspace_id = ? AND user_id = ?",
            vec![Bind::Workspace, Bind::Caller],
            hidden,
        )
    }

    /// A sum of `n` over the kept `rows` (a table and its first conditions) under the
    /// list's project and active filters. The kept tables count the tasks of no project
    /// under project 0, where a list's `t.project_id = 0` matches no task: a project
    /// filter of 0 sums nothing.
    fn summed(&self, rows: &str, mut values: Vec<Bind>, hidden: Option<bool>) -> Piece {
        let mut sql = format!("(SELECT COALESCE(SUM(n), 0) FROM {rows}");
        for p in self.projects {
            sql.push_str(" AND project_id = ? AND project_id <> 0");
            values.push(*p);
        }
        if self.active {
            sql.push_str(&format!(" AND status <> {STATUS_DONE}"));
        }
        if let Some(h) = hidden {
            sql.push_str(&format!(" AND hidden = {}", i64::from(h)));
        }
        sql.push(')');
        (sql, values)
    }

    /// A count of the tasks meeting `cond`, of hidden tasks or not hidden ones when
    /// `hidden` says; a sum of kept counts when they are the caller's own tasks.
    fn counted(&self, hidden: Option<bool>, visible: TaskVisibility) -> Piece {
        if visible.owned_or_team {
            return self.own_kept(hidden);
        }
        let mut sql = format!(
            "(SELECT COUNT(*) FROM tasks t WHERE {}",
            visible.workspace_term()
        );
        let mut values = vec![Bind::Workspace];
        for p in self.projects {
            sql.push_str(" AND t.project_id = ?");
            values.push(*p);
        }
        if let Some(h) = hidden {
            sql.push_str(&format!(" AND t.hidden = {}", i64::from(h)));
        }
        if self.active {
            sql.push_str(&format!(" AND t.status <> {STATUS_DONE}"));
        }
        let (cond, cond_values) = visible.cond.piece();
        sql.push_str(&format!(" AND {cond})"));
        values.extend(cond_values);
        (sql, values)
    }
}

/// The conditions of an activity list: visibility, then filters on the activity or on
/// the task or project it was posted to.
pub fn activity_conditions(actor: &Actor, filters: &[Filter]) -> Result<Conditions> {
    let see = policy::rule(actor, Kind::Activity, Action::See);
    let mut c = Conditions::new("a", compile(actor, see, Kind::Activity, Known::default()));
    // Filters on the project or task the activity was posted to.
    let target = |column: &str| {
        format!(
            "(CASE WHEN a.task_id IS NOT NULL THEN (SELECT x.{column} FROM tasks x WHERE x.id = a.task_id) \
             ELSE (SELECT x.{column} FROM projects x WHERE x.id = a.project_id) END)"
        )
    };
    for (i, f) in filters.iter().enumerate() {
        let value = Bind::Filter(i);
        match f {
            Filter::ProjectId(_) => c.push("a.project_id = ?", value),
            Filter::TaskId(_) => c.push("a.task_id = ?", value),
            Filter::Type(_) => c.push("a.type = ?", value),
            Filter::GroupId(_) => c.push(format!("{} = ?", target("group_id")), value),
            // Names its user twice; both values are pushed below.
            Filter::AssignedTo(_) => c.push(
                "(CASE WHEN a.task_id IS NOT NULL \
                 THEN EXISTS (SELECT 1 FROM task_team x WHERE x.task_id = a.task_id AND x.user_id = ?) \
                 ELSE EXISTS (SELECT 1 FROM project_team x WHERE x.project_id = a.project_id AND x.user_id = ?) END)",
                None,
            ),
            Filter::Active => c.push(format!("{} <> {STATUS_DONE}", target("status")), None),
            Filter::HideOlderThanDays(_) => c.push(
                format!(
                    "NOT ({} = {STATUS_DONE} AND {} < ?)",
                    target("status"),
                    target("closed_at")
                ),
                value,
            ),
            Filter::UpdatedFrom(_) => c.push("a.updated_at >= ?", value),
            Filter::UpdatedBefore(_) => c.push("a.updated_at < ?", value),
            Filter::CreatedFrom(_) => c.push("a.created_at >= ?", value),
            Filter::CreatedBefore(_) => c.push("a.created_at < ?", value),
            other => return Err(unsupported(other)),
        }
        if let Filter::AssignedTo(_) = f {
            c.values.extend([value, value]);
        }
    }
    Ok(c)
}

/// The conditions of a file list: visibility through the file's activity, then filters.
pub fn file_conditions(actor: &Actor, filters: &[Filter]) -> Result<Conditions> {
    // A file is seen with its activity.
    let see = policy::rule(actor, Kind::Activity, Action::See);
    let visible = match compile(actor, see, Kind::Activity, Known::default()) {
        Cond::Sql(activity, values) => Cond::Sql(
            format!(
                "EXISTS (SELECT 1 FROM activities a WHERE a.id = f.activity_id AND {activity})"
            ),
            values,
        ),
        constant => constant,
    };
    let mut c = Conditions::new("f", visible);
    for (i, f) in filters.iter().enumerate() {
        let value = Bind::Filter(i);
        match f {
            Filter::ProjectId(_) => c.push("f.project_id = ?", value),
            Filter::TaskId(_) => c.push("f.task_id = ?", value),
            Filter::ActivityId(_) => c.push("f.activity_id = ?", value),
            Filter::OwnerId(_) => c.push("f.owner_id = ?", value),
            // A file never changes after upload: updated is created.
            Filter::CreatedFrom(_) | Filter::UpdatedFrom(_) => c.push("f.created_at >= ?", value),
            Filter::CreatedBefore(_) | Filter::UpdatedBefore(_) => {
                c.push("f.created_at < ?", value)
            }
            other => return Err(unsupported(other)),
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The caller's rule to see objects of `kind`, as SQL over the alias of the kind
    /// (projects `p`, tasks `t`, activities `a`, users `u`).
    fn visible(actor: &Actor, kind: Kind) -> Piece {
        compile(
            actor,
            policy::rule(actor, kind, Action::See),
            kind,
            Known::default(),
        )
        .piece()
    }

    fn actor(level: SecurityLevel) -> Actor {
        Actor {
            user_id: 7,
            level,
            can_view_profiles: false,
        }
    }

    #[test]
    fn an_admin_sees_everything_without_a_condition() {
        let admin = actor(SecurityLevel::Admin);
        for kind in [Kind::Project, Kind::Task, Kind::Activity, Kind::User] {
            assert_eq!(visible(&admin, kind), ("TRUE".into(), vec![]), "{kind:?}");
        }
        let files = file_conditions(&admin, &[]).unwrap();
        assert_eq!(files.sql[1], "TRUE");
    }

    /// The team tests stay lookups in one subquery per statement (see the comment above
    /// `in_project_team`), never a subquery per row.
    #[test]
    fn team_tests_are_lookups_in_the_callers_teams() {
        let (user, values) = visible(&actor(SecurityLevel::User), Kind::Task);
        assert!(user.contains("t.id IN (SELECT tt.task_id FROM task_team tt WHERE tt.user_id = ?)"));
        assert!(user.contains(
            "t.project_id IN (SELECT pt.project_id FROM project_team pt WHERE pt.user_id = ?)"
        ));
        assert!(!user.contains("EXISTS"));
        assert_eq!(user.matches('?').count(), values.len());
        assert!(values.iter().all(|v| *v == Bind::Caller), "{values:?}");
        assert_eq!(
            visible(&actor(SecurityLevel::Client), Kind::Project),
            (
                "p.id IN (SELECT pt.project_id FROM project_team pt WHERE pt.user_id = ?)".into(),
                vec![Bind::Caller]
            )
        );
    }

    /// A list's statements are kept prepared (`Db::query_row_kept`) and kept written by
    /// shape (`driver::Shape`): their text, and where each value comes from, must be the
    /// same for every caller, workspace and filter value, the shape being the same, and
    /// the values must match the placeholders one for one. Checked for every role, with
    /// and without a project's facts, for every list and a few filters, against a second
    /// caller asking with other values of the same filters.
    #[test]
    fn list_statements_are_the_same_text_for_every_caller() {
        use SecurityLevel::{Admin, Client, External, User};
        let facts = [
            None,
            Some(ProjectFacts {
                visible: true,
                in_team: true,
            }),
            Some(ProjectFacts {
                visible: true,
                in_team: false,
            }),
            Some(ProjectFacts {
                visible: false,
                in_team: false,
            }),
        ];
        let filter_sets: [[&[Filter]; 2]; 6] = [
            [&[], &[]],
            [
                &[Filter::ProjectId(3), Filter::Active],
                &[Filter::ProjectId(9), Filter::Active],
            ],
            [&[Filter::OwnerId(4)], &[Filter::OwnerId(1)]],
            [
                &[Filter::AssignedTo(5), Filter::Name("a".into())],
                &[Filter::AssignedTo(6), Filter::Name("b_%".into())],
            ],
            // Activities take these; an activity's assignee is bound twice.
            [
                &[
                    Filter::AssignedTo(5),
                    Filter::Type("msg".into()),
                    Filter::HideOlderThanDays(3),
                ],
                &[
                    Filter::AssignedTo(6),
                    Filter::Type("fnote".into()),
                    Filter::HideOlderThanDays(30),
                ],
            ],
            [
                &[
                    Filter::HideOlderThanDays(3),
                    Filter::Name("a".into()),
                    Filter::Active,
                ],
                &[
                    Filter::HideOlderThanDays(9),
                    Filter::Name("z".into()),
                    Filter::Active,
                ],
            ],
        ];
        let statements = |c: Conditions| {
            let mut pieces = vec![(c.clause(), c.values)];
            pieces.extend(c.counted);
            for (sql, binds) in &pieces {
                assert_eq!(sql.matches('?').count(), binds.len(), "{sql}");
            }
            pieces
        };
        let mut checked = 0;
        for level in [Admin, User, External, Client] {
            let callers = [7, 8].map(|user_id| Actor {
                user_id,
                level,
                can_view_profiles: false,
            });
            for [first, second] in filter_sets {
                type List<'a> = (String, &'a dyn Fn(&Actor, &[Filter]) -> Result<Conditions>);
                let mut lists: Vec<List> = vec![
                    ("projects".into(), &project_conditions),
                    ("activities".into(), &activity_conditions),
                    ("files".into(), &file_conditions),
                ];
                let tasks: Vec<_> = facts
                    .iter()
                    .map(|f| {
                        move |a: &Actor, filters: &[Filter]| {
                            task_conditions(a, filters, *f, Dialect::Sqlite)
                        }
                    })
                    .collect();
                for (f, list) in facts.iter().zip(&tasks) {
                    lists.push((format!("tasks {f:?}"), list));
                }
                for (name, conditions) in lists {
                    // A filter a list does not take is refused alike for both.
                    let (Ok(seven), Ok(eight)) = (
                        conditions(&callers[0], first),
                        conditions(&callers[1], second),
                    ) else {
                        continue;
                    };
                    assert_eq!(
                        statements(seven),
                        statements(eight),
                        "{level:?} {name} {first:?}"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 50, "{checked}");
    }

    /// Each `Bind` is read from the call: the workspace, the caller, a filter's value as
    /// its statement compares it.
    #[test]
    fn binds_take_the_values_of_the_call() {
        let filters = [
            Filter::ProjectId(3),
            Filter::Active,
            Filter::Name("A_b".into()),
            Filter::Type("msg".into()),
            Filter::HideOlderThanDays(2),
        ];
        let bindings = Bindings {
            ws: WorkspaceId(2),
            caller: 7,
            filters: &filters,
        };
        let binds = [
            Bind::Workspace,
            Bind::Caller,
            Bind::Filter(0),
            Bind::Filter(2),
            Bind::Filter(3),
        ];
        assert_eq!(
            bindings.values(&binds).unwrap(),
            [
                Param::Int(2),
                Param::Int(7),
                Param::Int(3),
                Param::Text("%a\\_b%".into()),
                Param::Text("msg".into()),
            ]
        );
        assert_eq!(filter_value(&Filter::Active), None);
        let Some(Param::Int(then)) = bindings.values(&[Bind::Filter(4)]).unwrap().pop() else {
            panic!("a time");
        };
        // A bind to a filter without a value, or past the filters, is refused.
        assert!(bindings.values(&[Bind::Filter(1)]).is_err());
        assert!(bindings.values(&[Bind::Filter(5)]).is_err());
        assert!((crate::domain::now() - 2 * 86_400 - then).abs() <= 1);
    }

    /// role and project facts → the total of one project's active tasks.
    #[test]
    fn counted_totals_follow_the_task_rule() {
        use SecurityLevel::{Admin, Client, External, User};
        let kept = "(SELECT COALESCE(SUM(n), 0) FROM task_counts WHERE workspace_id = ? \
            AND project_id = ? AND project_id <> 0 AND status <> 30)";
        // The tasks they own or are in the team of, kept per user: open at the end.
        let own = "(SELECT COALESCE(SUM(n), 0) FROM own_task_counts WHERE workspace_id = ? \
            AND user_id = ? AND project_id = ? AND project_id <> 0";
        let inside = Some(ProjectFacts {
            visible: true,
            in_team: true,
        });
        let outside = Some(ProjectFacts {
            visible: true,
            in_team: false,
        });
        let unseen = Some(ProjectFacts {
            visible: false,
            in_team: false,
        });
        let table = [
            (Admin, None, kept.to_string()),
            (Client, inside, kept.to_string()),
            (Client, outside, "0".to_string()),
            (External, inside, kept.to_string()),
            (External, outside, format!("{own} AND status <> 30)")),
            (User, inside, kept.to_string()),
            (
                User,
                outside,
                format!(
                    "(SELECT COALESCE(SUM(n), 0) FROM task_counts WHERE workspace_id = ? \
                     AND project_id = ? AND project_id <> 0 AND status <> 30 AND hidden = 0) + \
                     {own} AND status <> 30 AND hidden = 1)"
                ),
            ),
            (User, unseen, "0".to_string()),
        ];
        let filters = [Filter::ProjectId(3), Filter::Active];
        for (level, facts, total) in table {
            let (got, values) =
                counted_task_total(&actor(level), &filters, facts.into(), Dialect::Sqlite)
                    .unwrap_or_else(|| panic!("{level:?} {facts:?} counts its total"));
            assert_eq!(
                got,
                format!("SELECT CAST({total} AS BIGINT)"),
                "{level:?} {facts:?}"
            );
            assert_eq!(
                got.matches('?').count(),
                values.len(),
                "{level:?} {facts:?}"
            );
        }
        // Without the project's facts, only a rule with nothing about projects keeps its
        // counts.
        let unknown = Known::default();
        assert!(counted_task_total(&actor(Admin), &[], unknown, Dialect::Sqlite).is_some());
        assert!(counted_task_total(&actor(User), &filters, unknown, Dialect::Sqlite).is_none());
        assert!(counted_task_total(&actor(Client), &[], unknown, Dialect::Sqlite).is_none());
    }

    /// The project's facts are asked only when the caller's rule depends on them and the
    /// list is of one project.
    #[test]
    fn project_facts_are_asked_of_one_project_for_the_roles_that_need_them() {
        use SecurityLevel::{Admin, Client, External, User};
        let one = [Filter::Active, Filter::ProjectId(3)];
        let two = [Filter::ProjectId(3), Filter::ProjectId(4)];
        assert_eq!(project_asked_first(&actor(Admin), &one), None);
        for level in [User, External, Client] {
            assert_eq!(project_asked_first(&actor(level), &one), Some(1));
            assert_eq!(project_asked_first(&actor(level), &two), None);
            assert_eq!(project_asked_first(&actor(level), &[Filter::Active]), None);
        }
    }

    /// An external outside the project's team sees their own tasks, looked up as a set;
    /// without the project's facts, or inside its team, the rule is as compiled.
    #[test]
    fn own_tasks_are_a_set_once_the_project_is_settled() {
        let external = actor(SecurityLevel::External);
        let one = [Filter::ProjectId(3)];
        let of = |facts, dialect| {
            task_conditions(&external, &one, facts, dialect)
                .unwrap()
                .sql[1]
                .clone()
        };
        let visibility = |facts| of(facts, Dialect::Sqlite);
        let outside = Some(ProjectFacts {
            visible: false,
            in_team: false,
        });
        let own = "SELECT x.id FROM tasks x WHERE x.workspace_id = ? AND x.owner_id = ? \
             UNION ALL SELECT x.task_id FROM task_team x WHERE x.user_id = ?";
        assert_eq!(visibility(outside), format!("t.id IN ({own})"));
        // PostgreSQL's index takes an array's ids in order (a page stops at its 25th).
        assert_eq!(
            of(outside, Dialect::Postgres),
            format!("t.id = ANY(ARRAY({own}))")
        );
        assert_eq!(
            visibility(Some(ProjectFacts {
                visible: true,
                in_team: true
            })),
            "TRUE"
        );
        assert_eq!(visibility(None), visible(&external, Kind::Task).0);
        assert!(visibility(None).contains("t.owner_id = ? OR"));
    }

    /// A page keeps one plan for every value only where its project is settled and its
    /// filters are the project and being active, on PostgreSQL.
    #[test]
    fn a_page_keeps_its_plan_where_the_project_drives_it() {
        let (user, external) = (actor(SecurityLevel::User), actor(SecurityLevel::External));
        let outside = Some(ProjectFacts {
            visible: true,
            in_team: false,
        });
        let one = [Filter::ProjectId(3), Filter::Active];
        let fixed = |who: &Actor, filters: &[Filter], facts| {
            task_conditions(who, filters, facts, Dialect::Postgres)
                .unwrap()
                .plan_fixed
        };
        assert!(fixed(&user, &one, outside));
        assert!(fixed(&user, &one[..1], outside));
        // Its team test is a lookup of each task, which the generic plan cannot turn into
        // a read of every team row.
        let visibility = task_conditions(&user, &one, outside, Dialect::Postgres)
            .unwrap()
            .sql[1]
            .clone();
        assert_eq!(
            visibility,
            "(t.hidden = 0 OR t.owner_id = ? OR EXISTS (SELECT 1 FROM task_team tt \
             WHERE tt.task_id = t.id AND tt.user_id = ?))"
        );
        let sqlite = task_conditions(&user, &one, outside, Dialect::Sqlite).unwrap();
        assert!(
            !sqlite.plan_fixed && sqlite.sql[1].contains("t.id IN"),
            "SQLite"
        );
        assert!(fixed(&external, &one, outside), "the external's own tasks");
        let dated = [Filter::ProjectId(3), Filter::DeadlineBefore(10)];
        assert!(!fixed(&user, &dated, outside), "a filter on a date");
        assert!(!fixed(&user, &one, None), "no facts, no snapshot");
        let inside = Some(ProjectFacts {
            visible: true,
            in_team: true,
        });
        assert!(!fixed(&user, &one, inside), "every task: an admin's page");
        let client = actor(SecurityLevel::Client);
        assert!(!fixed(&client, &one, inside), "a client's, in the team");
        assert!(!fixed(&client, &one, outside), "a client's, outside: none");
    }
}
