//! Forms: reading a posted form into the API's arguments, and what a form shows again
//! (the values typed, each field's error) when the API's handler refused it.

use axum::extract::Request;

use crate::http::args::Args;
use crate::http::body::MAX_BODY;
use crate::http::error::ApiError;
use crate::web::{Visit, WebError};

/// A posted form: its pairs as sent (to show them again) and as the API's arguments.
pub struct Posted {
    pub pairs: Vec<(String, String)>,
    pub args: Args,
}

impl Posted {
    /// The version the form was read at, if it says.
    pub fn version(&self) -> Option<i64> {
        self.value("version").and_then(|v| v.parse().ok())
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The signed-in caller and their form: the session is checked from the headers before
/// the body is read, and the body (at most the API's 1 MiB) before its forgery token.
pub async fn read(state: &crate::api::AppState, req: Request) -> Result<(Visit, Posted), WebError> {
    let visit = Visit::of(state, &req).await?;
    let posted = read_body(req).await?;
    visit.check_csrf(posted.value("csrf"))?;
    Ok((visit, posted))
}

/// A form posted to a path that names one object (`/projects/{id}/edit`): the caller,
/// the form with the id as the argument `key` (`project[id]`, `id`), and the id.
pub async fn read_for(
    state: &crate::api::AppState,
    id: &str,
    req: Request,
    key: &str,
) -> Result<(Visit, Posted, i64), WebError> {
    let (visit, mut posted) = read(state, req).await?;
    let id = super::path_id(id)?;
    posted.args.insert(key, &id.to_string())?;
    Ok((visit, posted, id))
}

/// The pairs of a url-encoded form body.
pub async fn read_body(req: Request) -> Result<Posted, WebError> {
    let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|_| ApiError::TooLarge("The form is larger than 1 MiB".into()))?;
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let mut args = Args::default();
    for (k, v) in &pairs {
        // The form's own fields are not the call's arguments.
        if k == "csrf" || k == "version" || k == "back" {
            continue;
        }
        args.insert(k, v)?;
    }
    Ok(Posted { pairs, args })
}

/// What a form shows: each field's value and error, and a message for the whole form.
#[derive(Default)]
pub struct FormState {
    values: Vec<(String, String)>,
    errors: Vec<(String, String)>,
    pub problem: Option<String>,
}

impl FormState {
    /// A form filled with an object's current values, by argument name.
    pub fn with_values(values: Vec<(String, String)>) -> FormState {
        FormState {
            values,
            ..FormState::default()
        }
    }

    /// The form as it was posted, with the API's refusal beside the fields it names.
    /// Anything that is not about a field is the form's problem.
    pub fn refused(posted: &Posted, error: ApiError) -> Result<FormState, WebError> {
        let mut form = FormState {
            values: posted.pairs.clone(),
            ..FormState::default()
        };
        match error {
            ApiError::Validation(errors) => {
                for e in errors {
                    form.errors.push((e.field, e.message));
                }
            }
            ApiError::InvalidArgument { field, message } => form.errors.push((field, message)),
            ApiError::PreconditionFailed => {
                form.problem = Some(
                    "Someone else changed this meanwhile. Reload the page to see their \
                     change, then make yours again."
                        .into(),
                )
            }
            e @ (ApiError::Conflict { .. } | ApiError::BadRequest(_)) => {
                form.problem = Some(e.to_string())
            }
            e => return Err(e.into()),
        }
        Ok(form)
    }

    /// An edit form refused: as [`FormState::refused`], but when someone else changed the
    /// object since the form was read, the form comes back with the object's `current`
    /// values (and its new version), saying so, so that sending it again cannot undo
    /// their change unseen.
    pub fn refused_edit(
        posted: &Posted,
        error: ApiError,
        current: Vec<(String, String)>,
    ) -> Result<FormState, WebError> {
        let stale = matches!(error, ApiError::PreconditionFailed);
        let refused = FormState::refused(posted, error)?;
        Ok(if stale {
            FormState {
                problem: refused.problem,
                ..FormState::with_values(current)
            }
        } else {
            refused
        })
    }

    /// The value of a field (the last one sent), or empty.
    pub fn get(&self, name: &str) -> &str {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Every value of a field of several values (a team).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.values
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a field of several values (a team, a checkbox) holds `value`.
    pub fn has(&self, name: &str, value: &str) -> bool {
        self.values.iter().any(|(k, v)| k == name && v == value)
    }

    /// Whether a checkbox is on: its last value is `1`.
    pub fn checked(&self, name: &str) -> bool {
        self.get(name) == "1"
    }

    pub fn error(&self, name: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty() || self.problem.is_some()
    }

    /// Errors about arguments no field of the form shows.
    pub fn other_errors<S: AsRef<[&'static str]> + ?Sized>(&self, shown: &S) -> Vec<String> {
        let shown = shown.as_ref();
        self.errors
            .iter()
            .filter(|(k, _)| !shown.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}: {v}"))
            .collect()
    }
}

/// A field's id: its name with brackets turned into dashes (`project[name]` is
/// `project-name`).
pub fn field_id(name: &str) -> String {
    name.replace("[]", "").replace('[', "-").replace(']', "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::error::FieldError;

    #[test]
    fn field_ids_are_names_without_brackets() {
        assert_eq!(field_id("project[name]"), "project-name");
        assert_eq!(field_id("task[team][]"), "task-team");
        assert_eq!(field_id("login"), "login");
    }

    #[test]
    fn a_refused_form_keeps_what_was_typed_and_places_each_error() {
        let posted = Posted {
            pairs: vec![
                ("project[name]".into(), String::new()),
                ("project[description]".into(), "kept <b>".into()),
                ("project[hidden]".into(), "0".into()),
                ("project[hidden]".into(), "1".into()),
                ("project[team][]".into(), "3".into()),
            ],
            args: Args::default(),
        };
        let form = FormState::refused(
            &posted,
            ApiError::Validation(vec![
                FieldError::new("project[name]", "required", "is required"),
                FieldError::new("project[ownerId]", "invalid", "user 9 does not exist"),
            ]),
        )
        .unwrap();
        assert_eq!(form.get("project[description]"), "kept <b>");
        assert!(form.checked("project[hidden]"), "the checkbox's value wins");
        assert!(form.has("project[team][]", "3"));
        assert_eq!(form.error("project[name]"), Some("is required"));
        assert_eq!(
            form.other_errors(&["project[name]"]),
            vec!["project[ownerId]: user 9 does not exist".to_owned()]
        );
        // A stale edit form comes back with the current values, not the stale ones.
        let stale = FormState::refused_edit(
            &posted,
            ApiError::PreconditionFailed,
            vec![("project[description]".into(), "theirs".into())],
        )
        .unwrap();
        assert_eq!(stale.get("project[description]"), "theirs");
        assert!(stale
            .problem
            .as_deref()
            .unwrap()
            .contains("changed this meanwhile"));
        // A refusal that is no form's business is the page's.
        assert!(FormState::refused(&posted, ApiError::forbidden("no")).is_err());
    }
}
