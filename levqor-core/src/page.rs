//! Pages of list results: how many, and a cursor (the last id of the previous page). Ids are
//! time-ordered UUIDs, so a cursor is stable under inserts.

use crate::error::{Error, Result, Violation};
use serde::Serialize;
use uuid::Uuid;

/// Most items one list call returns.
pub const MAX_PAGE: usize = 100;

/// A page of results and the cursor of the next one.
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// A page asked for: how many, and the cursor (the last id of the previous page).
pub(crate) struct PageRequest {
    pub(crate) limit: usize,
    pub(crate) before: Option<Uuid>,
}

impl PageRequest {
    /// Reads `limit` and `cursor`; any problem is a `validation_failed` error.
    pub(crate) fn parse_or_fail(limit: Option<usize>, cursor: Option<&str>) -> Result<Self> {
        let mut bad = Vec::new();
        let page = Self::parse(limit, cursor, &mut bad);
        fail_on(bad).map(|()| page)
    }

    /// Reads `limit` (default 20, at most [`MAX_PAGE`]) and `cursor`, adding any problem to `bad`.
    pub(crate) fn parse(
        limit: Option<usize>,
        cursor: Option<&str>,
        bad: &mut Vec<Violation>,
    ) -> Self {
        let limit = limit.unwrap_or(20);
        if !(1..=MAX_PAGE).contains(&limit) {
            bad.push(Violation::new(
                "/limit",
                format!("must be between 1 and {MAX_PAGE}"),
            ));
        }
        let before = cursor.and_then(|c| match Uuid::parse_str(c) {
            Ok(id) => Some(id),
            Err(_) => {
                bad.push(Violation::new(
                    "/cursor",
                    "is not a cursor this API returned",
                ));
                None
            }
        });
        Self { limit, before }
    }

    /// Cuts `items` (fetched with `limit + 1`) to the page and sets the next cursor.
    pub(crate) fn cut<T>(&self, mut items: Vec<T>, id: impl Fn(&T) -> Uuid) -> Page<T> {
        let next_cursor = if items.len() > self.limit {
            items.truncate(self.limit);
            items.last().map(|i| id(i).to_string())
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

/// `validation_failed` "bad query parameters" with `bad`, unless it is empty.
pub(crate) fn fail_on(bad: Vec<Violation>) -> Result<()> {
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::violations(
            "validation_failed",
            "bad query parameters",
            bad,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_cut_with_a_cursor_to_the_next() {
        let page = PageRequest::parse_or_fail(Some(2), None).unwrap();
        let ids: Vec<Uuid> = (1..=3).map(Uuid::from_u128).collect();
        let cut = page.cut(ids.clone(), |i| *i);
        assert_eq!(cut.items, ids[..2]);
        assert_eq!(cut.next_cursor, Some(ids[1].to_string()));
        let last = page.cut(ids[..2].to_vec(), |i| *i);
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn bad_limits_and_cursors_are_reported_together() {
        let err = PageRequest::parse_or_fail(Some(0), Some("nope"))
            .err()
            .unwrap();
        let pointers: Vec<&str> = err.violations.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(pointers, ["/limit", "/cursor"]);
        assert!(PageRequest::parse_or_fail(Some(MAX_PAGE + 1), None).is_err());
    }
}
