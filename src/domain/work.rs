//! Projects, tasks and activities: their attributes, defaults and validation (sections
//! 6 and 9 of the contract).

use crate::domain::validate::{self, Invalid};

pub const STATUS_OPEN: i64 = 10;
pub const STATUS_ON_HOLD: i64 = 20;
pub const STATUS_DONE: i64 = 30;

pub const MAX_DESCRIPTION: usize = 100_000;
pub const MAX_TAGS: usize = 1_000;
/// The most hours one activity (`hoursDone`) or one task's estimate (`estimatedTime`) may
/// hold: over a century of work, and far inside what an f64 counts exactly to the hour.
pub const MAX_HOURS: f64 = 1_000_000.0;

/// A project, with its team.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub tags: Option<String>,
    pub owner_id: i64,
    pub group_id: Option<i64>,
    pub start_date: Option<i64>,
    pub end_date: Option<i64>,
    pub priority: i64,
    pub status: i64,
    pub closed_at: Option<i64>,
    pub hidden: bool,
    pub flag: i64,
    pub notify_project_team: bool,
    pub notify_client: bool,
    pub team: Vec<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Raised by every write; answers carry it as their ETag.
    pub version: i64,
}

impl Project {
    /// A new project's defaults: priority normal, status open, owned by the caller.
    pub fn new(owner_id: i64) -> Project {
        Project {
            id: 0,
            name: String::new(),
            description: None,
            tags: None,
            owner_id,
            group_id: None,
            start_date: None,
            end_date: None,
            priority: 2,
            status: STATUS_OPEN,
            closed_at: None,
            hidden: false,
            flag: 0,
            notify_project_team: false,
            notify_client: false,
            team: Vec::new(),
            created_at: 0,
            updated_at: 0,
            version: 0,
        }
    }
}

/// A task, with its team and derived values.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: i64,
    pub project_id: Option<i64>,
    pub parent_id: Option<i64>,
    /// Read only: the parent's name.
    pub parent_name: Option<String>,
    pub name: String,
    pub description: Option<String>,
    pub tags: Option<String>,
    pub owner_id: i64,
    pub group_id: Option<i64>,
    pub start_date: Option<i64>,
    /// The deadline.
    pub end_date: Option<i64>,
    pub priority: i64,
    pub progress: i64,
    pub status: i64,
    pub closed_at: Option<i64>,
    pub hidden: bool,
    pub flag: i64,
    /// Read only: the sum of the activities' hours.
    pub hours_done: f64,
    pub estimated_time: Option<f64>,
    pub notify_project_team: bool,
    pub notify_task_team: bool,
    pub notify_client: bool,
    pub team: Vec<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Raised by every write; answers carry it as their ETag.
    pub version: i64,
}

impl Task {
    pub fn new(owner_id: i64) -> Task {
        Task {
            id: 0,
            project_id: None,
            parent_id: None,
            parent_name: None,
            name: String::new(),
            description: None,
            tags: None,
            owner_id,
            group_id: None,
            start_date: None,
            end_date: None,
            priority: 2,
            progress: 0,
            status: STATUS_OPEN,
            closed_at: None,
            hidden: false,
            flag: 0,
            hours_done: 0.0,
            estimated_time: None,
            notify_project_team: false,
            notify_task_team: false,
            notify_client: false,
            team: Vec::new(),
            created_at: 0,
            updated_at: 0,
            version: 0,
        }
    }
}

/// The activity types of 5pm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityType {
    Msg,
    Progress,
    File,
    GoogleDocs,
    SsBoards,
    FfBoards,
}

impl ActivityType {
    pub const ALL: [ActivityType; 6] = [
        ActivityType::Msg,
        ActivityType::Progress,
        ActivityType::File,
        ActivityType::GoogleDocs,
        ActivityType::SsBoards,
        ActivityType::FfBoards,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ActivityType::Msg => "msg",
            ActivityType::Progress => "progress",
            ActivityType::File => "file",
            ActivityType::GoogleDocs => "googledocs",
            ActivityType::SsBoards => "ss_boards",
            ActivityType::FfBoards => "ff_boards",
        }
    }

    pub fn parse(s: &str) -> Option<ActivityType> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The last three carry an http(s) link in their text.
    pub fn is_link(self) -> bool {
        matches!(
            self,
            ActivityType::GoogleDocs | ActivityType::SsBoards | ActivityType::FfBoards
        )
    }
}

/// An activity: a message, progress note, file note or link, posted to a task or a
/// project.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub id: i64,
    pub project_id: Option<i64>,
    pub task_id: Option<i64>,
    pub kind: ActivityType,
    pub text: Option<String>,
    pub owner_id: i64,
    pub progress: Option<i64>,
    pub hours_done: Option<f64>,
    pub hide_from_clients: bool,
    pub date: i64,
    pub notify_project_team: bool,
    pub notify_task_team: bool,
    pub notify_client: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Raised by every write; answers carry it as their ETag.
    pub version: i64,
}

/// A stored file attached to an activity.
#[derive(Debug, Clone, PartialEq)]
pub struct FileMeta {
    pub id: i64,
    pub activity_id: i64,
    pub task_id: Option<i64>,
    pub project_id: Option<i64>,
    pub name: String,
    pub size: i64,
    pub mime_type: String,
    pub sha256: String,
    pub storage_key: String,
    pub owner_id: i64,
    /// Whether its activity is a message (clients may change files of their messages).
    pub on_message: bool,
    pub created_at: i64,
}

/// One attribute's failure, by the attribute's name.
pub type Problems = Vec<(&'static str, Invalid)>;

fn range(
    problems: &mut Problems,
    attr: &'static str,
    value: i64,
    ok: impl Fn(i64) -> bool,
    msg: &str,
) {
    if !ok(value) {
        problems.push((
            attr,
            Invalid {
                code: "invalid",
                message: msg.into(),
            },
        ));
    }
}

fn common_text(
    problems: &mut Problems,
    name: &str,
    description: &Option<String>,
    tags: &Option<String>,
) {
    if let Err(e) = validate::name(name) {
        problems.push(("name", e));
    }
    if let Some(d) = description {
        if let Err(e) = validate::max_chars(d, MAX_DESCRIPTION) {
            problems.push(("description", e));
        }
    }
    if let Some(t) = tags {
        if let Err(e) = validate::max_chars(t, MAX_TAGS) {
            problems.push(("tags", e));
        }
    }
}

fn dates(problems: &mut Problems, start: Option<i64>, end: Option<i64>) {
    if let (Some(s), Some(e)) = (start, end) {
        if e < s {
            problems.push((
                "endDate",
                Invalid {
                    code: "invalid",
                    message: "must not be before startDate".into(),
                },
            ));
        }
    }
}

fn hours(problems: &mut Problems, attr: &'static str, h: Option<f64>) {
    if let Some(h) = h {
        // NaN fails the range test too.
        if !(0.0..=MAX_HOURS).contains(&h) {
            problems.push((
                attr,
                Invalid {
                    code: "invalid",
                    message: format!("must be a number of hours from 0 to {MAX_HOURS}"),
                },
            ));
        }
    }
}

fn shared_ranges(problems: &mut Problems, priority: i64, status: i64, flag: i64) {
    range(
        problems,
        "priority",
        priority,
        |v| (1..=4).contains(&v),
        "must be 1, 2, 3 or 4",
    );
    range(
        problems,
        "status",
        status,
        |v| [STATUS_OPEN, STATUS_ON_HOLD, STATUS_DONE].contains(&v),
        "must be 10, 20 or 30",
    );
    range(
        problems,
        "flag",
        flag,
        |v| (0..=3).contains(&v),
        "must be 0, 1, 2 or 3",
    );
}

/// Tags: comma-separated, each trimmed, empty ones dropped.
pub fn normalize_tags(raw: &str) -> Option<String> {
    let tags: Vec<&str> = raw
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    (!tags.is_empty()).then(|| tags.join(","))
}

pub fn validate_project(p: &Project) -> Problems {
    let mut problems = Vec::new();
    common_text(&mut problems, &p.name, &p.description, &p.tags);
    shared_ranges(&mut problems, p.priority, p.status, p.flag);
    dates(&mut problems, p.start_date, p.end_date);
    problems
}

pub fn validate_task(t: &Task) -> Problems {
    let mut problems = Vec::new();
    common_text(&mut problems, &t.name, &t.description, &t.tags);
    shared_ranges(&mut problems, t.priority, t.status, t.flag);
    range(
        &mut problems,
        "progress",
        t.progress,
        |v| (0..=100).contains(&v),
        "must be 0 to 100",
    );
    hours(&mut problems, "estimatedTime", t.estimated_time);
    dates(&mut problems, t.start_date, t.end_date);
    problems
}

pub fn validate_activity(a: &Activity) -> Problems {
    let mut problems = Vec::new();
    if a.task_id.is_none() && a.project_id.is_none() {
        problems.push((
            "taskId",
            Invalid {
                code: "required",
                message: "an activity is posted to a task (taskId) or a project (projectId)".into(),
            },
        ));
    }
    if let Some(text) = &a.text {
        if let Err(e) = validate::max_chars(text, MAX_DESCRIPTION) {
            problems.push(("text", e));
        }
    }
    if a.kind == ActivityType::Progress {
        if a.task_id.is_none() {
            problems.push((
                "taskId",
                Invalid {
                    code: "required",
                    message: "a progress note is posted to a task".into(),
                },
            ));
        }
        match a.progress {
            None => problems.push((
                "progress",
                Invalid {
                    code: "required",
                    message: "a progress note needs progress".into(),
                },
            )),
            Some(p) => range(
                &mut problems,
                "progress",
                p,
                |v| (0..=100).contains(&v),
                "must be 0 to 100",
            ),
        }
    } else if let Some(p) = a.progress {
        range(
            &mut problems,
            "progress",
            p,
            |v| (0..=100).contains(&v),
            "must be 0 to 100",
        );
    }
    if a.kind.is_link() {
        let ok = a.text.as_deref().is_some_and(|t| {
            let t = t.trim();
            (t.starts_with("https://") || t.starts_with("http://"))
                && !t.contains(char::is_whitespace)
                && t.len() > 8
        });
        if !ok {
            problems.push((
                "text",
                Invalid {
                    code: "invalid",
                    message: "must be an http(s) link for this type".into(),
                },
            ));
        }
    }
    hours(&mut problems, "hoursDone", a.hours_done);
    problems
}

/// Status and the time it was closed move together: done records when, anything else
/// clears it.
pub fn closed_at(
    previous_status: i64,
    previous_closed: Option<i64>,
    status: i64,
    now: i64,
) -> Option<i64> {
    match (previous_status == STATUS_DONE, status == STATUS_DONE) {
        (_, false) => None,
        (true, true) => previous_closed.or(Some(now)),
        (false, true) => Some(now),
    }
}

/// What the newest progress note does to its task (section 9): its progress becomes the
/// task's; 100 closes the task; under 100 reopens a done task.
pub fn apply_progress(status: i64, progress: i64) -> i64 {
    if progress >= 100 {
        STATUS_DONE
    } else if status == STATUS_DONE {
        STATUS_OPEN
    } else {
        status
    }
}

/// How a task's hoursDone follows one activity being written (section 9).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HoursChange {
    /// The activity's hours did not change the sum.
    Unchanged,
    /// A new activity: its hours are added to the task's, without re-reading the others
    /// (a task with many activities would otherwise make every post slower).
    Add(f64),
    /// An activity's hours were edited or removed: the sum is taken again, so rounding
    /// errors of repeated subtractions never pile up.
    Resum,
}

/// What writing an activity (`before` is the stored one, `None` for a new activity;
/// `after` is `None` for a removal) changes in its task's roll-up: its hours, and whether
/// the newest progress note must be looked up again.
pub fn roll_up(before: Option<&Activity>, after: Option<&Activity>) -> (HoursChange, bool) {
    let hours = |a: Option<&Activity>| a.and_then(|a| a.hours_done).unwrap_or(0.0);
    let progress_note = |a: Option<&Activity>| a.is_some_and(|a| a.kind == ActivityType::Progress);
    let change = match before {
        _ if hours(before) == hours(after) => HoursChange::Unchanged,
        None => HoursChange::Add(hours(after)),
        Some(_) => HoursChange::Resum,
    };
    // An edit can move a note's date or progress, so any progress note written or removed
    // counts; messages never touch progress.
    (change, progress_note(before) || progress_note(after))
}

/// The group a task takes: a task in a project takes the project's group
/// (`project_group` is `Some` for a task in a project, holding that project's group, or
/// `None` when the project has none or is gone); a single task keeps its own.
pub fn task_group(project_group: Option<Option<i64>>, own: Option<i64>) -> Option<i64> {
    match project_group {
        Some(group) => group,
        None => own,
    }
}

/// Whether saving a task moves its sub-tasks (and the activities and files of all) to
/// its project: when it is an existing task (`before` holds the project it was in) that
/// changes project.
pub fn moves_sub_tasks(before: Option<Option<i64>>, after: Option<i64>) -> bool {
    before.is_some_and(|project| project != after)
}

/// Hours are kept to nine decimals (a few microseconds), so 0.1 added ten times reads 1.
pub const HOURS_DECIMALS: i32 = 9;
/// Billionths of an hour in an hour: the grid `HOURS_DECIMALS` rounds to.
pub const HOURS_GRID: f64 = 1e9;

/// `hours` in billionths, when it lies on the nine-decimal grid (as 0.1 or 1.25 do, as
/// nearly as an f64 holds them). Hours on the grid can be added to a task's in one sum:
/// rounding after the sum is then rounding after each, which is how they are added one
/// at a time.
pub fn hours_on_grid(hours: f64) -> Option<i64> {
    let billionths = (hours * HOURS_GRID).round();
    (billionths / HOURS_GRID == hours).then_some(billionths as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_on_the_nine_decimal_grid_are_counted_in_billionths() {
        assert_eq!(HOURS_GRID, 10f64.powi(HOURS_DECIMALS));
        assert_eq!(hours_on_grid(0.1), Some(100_000_000));
        assert_eq!(hours_on_grid(0.3), Some(300_000_000));
        assert_eq!(hours_on_grid(1.25), Some(1_250_000_000));
        assert_eq!(hours_on_grid(0.000000001), Some(1));
        assert_eq!(hours_on_grid(MAX_HOURS), Some(1_000_000_000_000_000));
        // Off the grid: added alone, rounded after it.
        assert_eq!(hours_on_grid(0.0000000005), None);
        assert_eq!(hours_on_grid(0.1234567891), None);
    }

    /// A message by user 1, posted nowhere yet; tests change what they need.
    fn message() -> Activity {
        Activity {
            id: 0,
            project_id: None,
            task_id: None,
            kind: ActivityType::Msg,
            text: None,
            owner_id: 1,
            progress: None,
            hours_done: None,
            hide_from_clients: false,
            date: 0,
            notify_project_team: false,
            notify_task_team: false,
            notify_client: false,
            created_at: 0,
            updated_at: 0,
            version: 0,
        }
    }

    #[test]
    fn roll_up_adds_new_hours_and_resums_edits() {
        let mut note = Activity {
            id: 1,
            project_id: Some(1),
            task_id: Some(2),
            hours_done: Some(1.5),
            ..message()
        };
        assert_eq!(roll_up(None, Some(&note)), (HoursChange::Add(1.5), false));
        assert_eq!(roll_up(Some(&note), None), (HoursChange::Resum, false));
        assert_eq!(
            roll_up(Some(&note), Some(&note)),
            (HoursChange::Unchanged, false)
        );
        let mut edited = note.clone();
        edited.hours_done = Some(2.0);
        assert_eq!(
            roll_up(Some(&note), Some(&edited)),
            (HoursChange::Resum, false)
        );
        note.hours_done = None;
        note.kind = ActivityType::Progress;
        assert_eq!(roll_up(None, Some(&note)), (HoursChange::Unchanged, true));
        assert_eq!(roll_up(Some(&note), None), (HoursChange::Unchanged, true));
    }

    #[test]
    fn project_defaults_are_valid_once_named() {
        let mut p = Project::new(1);
        assert_eq!(validate_project(&p)[0].0, "name");
        p.name = "Site".into();
        assert!(validate_project(&p).is_empty());
        p.priority = 5;
        p.status = 15;
        p.flag = 4;
        p.start_date = Some(10);
        p.end_date = Some(5);
        let fields: Vec<_> = validate_project(&p).iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["priority", "status", "flag", "endDate"]);
    }

    #[test]
    fn tasks_bound_progress_and_hours() {
        let mut t = Task::new(1);
        t.name = "Do".into();
        t.progress = 101;
        t.estimated_time = Some(f64::NAN);
        let fields: Vec<_> = validate_task(&t).iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["progress", "estimatedTime"]);
        t.progress = 100;
        for (hours, ok) in [
            (MAX_HOURS, true),
            (0.0, true),
            (MAX_HOURS + 0.5, false),
            (1e23, false),
            (f64::INFINITY, false),
            (-0.5, false),
        ] {
            t.estimated_time = Some(hours);
            assert_eq!(validate_task(&t).is_empty(), ok, "{hours}");
            let a = Activity {
                task_id: Some(1),
                hours_done: Some(hours),
                ..message()
            };
            assert_eq!(validate_activity(&a).is_empty(), ok, "{hours}");
        }
    }

    #[test]
    fn activities_need_a_target_and_the_right_text() {
        let mut a = Activity {
            kind: ActivityType::GoogleDocs,
            text: Some("not a link".into()),
            hours_done: Some(-1.0),
            ..message()
        };
        let fields: Vec<_> = validate_activity(&a).iter().map(|(f, _)| *f).collect();
        assert_eq!(fields, ["taskId", "text", "hoursDone"]);
        a.task_id = Some(1);
        a.text = Some("https://docs.example.com/d/1".into());
        a.hours_done = Some(1.5);
        assert!(validate_activity(&a).is_empty());
        a.kind = ActivityType::Progress;
        assert_eq!(validate_activity(&a)[0].0, "progress");
    }

    #[test]
    fn progress_and_status() {
        assert_eq!(apply_progress(STATUS_OPEN, 100), STATUS_DONE);
        assert_eq!(apply_progress(STATUS_DONE, 40), STATUS_OPEN);
        assert_eq!(apply_progress(STATUS_ON_HOLD, 40), STATUS_ON_HOLD);
        assert_eq!(closed_at(STATUS_OPEN, None, STATUS_DONE, 7), Some(7));
        assert_eq!(closed_at(STATUS_DONE, Some(3), STATUS_DONE, 7), Some(3));
        assert_eq!(closed_at(STATUS_DONE, Some(3), STATUS_OPEN, 7), None);
    }

    #[test]
    fn tags_are_trimmed() {
        assert_eq!(normalize_tags(" a, b ,,c "), Some("a,b,c".into()));
        assert_eq!(normalize_tags(" , "), None);
    }

    #[test]
    fn a_task_in_a_project_takes_its_group_and_a_single_task_keeps_its_own() {
        // (the project's group, if in a project; the task's own) -> the group it takes
        let table = [
            (Some(Some(4)), Some(9), Some(4)),
            (Some(Some(4)), None, Some(4)),
            (Some(None), Some(9), None),
            (None, Some(9), Some(9)),
            (None, None, None),
        ];
        for (project_group, own, taken) in table {
            assert_eq!(
                task_group(project_group, own),
                taken,
                "{project_group:?} {own:?}"
            );
        }
    }

    #[test]
    fn sub_tasks_move_only_when_an_existing_task_changes_project() {
        // (project before, if the task existed; project after) -> sub-tasks move
        let table = [
            (None, Some(1), false),
            (None, None, false),
            (Some(Some(1)), Some(1), false),
            (Some(None), None, false),
            (Some(Some(1)), Some(2), true),
            (Some(Some(1)), None, true),
            (Some(None), Some(2), true),
        ];
        for (before, after, moves) in table {
            assert_eq!(
                moves_sub_tasks(before, after),
                moves,
                "{before:?} {after:?}"
            );
        }
    }
}
