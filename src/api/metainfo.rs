//! metainfo: the fixed status and priority lists.

use crate::api::Ctx;
use crate::http::error::ApiError;
use crate::http::response::{Output, Record, Value};

pub const STATUSES: [(i64, &str); 3] = [(10, "open"), (20, "on hold"), (30, "done")];
pub const PRIORITIES: [(i64, &str); 4] = [(1, "low"), (2, "normal"), (3, "high"), (4, "urgent")];

fn list(kind: &'static str, entries: &[(i64, &str)]) -> Output {
    Output::all(
        kind,
        entries
            .iter()
            .map(|(id, name)| {
                Record::new(kind)
                    .with("id", Value::Id(*id))
                    .with("name", *name)
            })
            .collect(),
    )
}

pub async fn statuses(_: &Ctx<'_>) -> Result<Output, ApiError> {
    Ok(list("status", &STATUSES))
}

pub async fn priorities(_: &Ctx<'_>) -> Result<Output, ApiError> {
    Ok(list("priority", &PRIORITIES))
}
