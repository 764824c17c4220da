//! What a caller may see of the index: the list parameters, and the access check's answers per
//! log (asked once per log and request or stream), shared by the list and the index stream.

use std::collections::HashMap;

use super::params::{Incoming, Query};
use crate::access::Action;
use crate::error::ApiError;
use crate::index::{decode_cursor, Filter, Position, StateFilter, Summary};
use crate::log::{LogKey, Outcome};

const DEFAULT_LIMIT: u64 = 50;
const MAX_LIMIT: u64 = 500;
/// Access checks one list request may make; past it the page ends early, with a cursor.
const MAX_CHECKS: usize = 2000;
/// Decisions one index stream remembers before it forgets them all.
const KNOWN_LIMIT: usize = 10_000;

/// What a list or an index stream asks for.
pub(super) struct ListParams {
    pub filter: Filter,
    pub limit: usize,
    pub before: Option<Position>,
}

impl ListParams {
    pub fn parse(query: &Query) -> Result<Self, ApiError> {
        let state = match query.single("state")? {
            None | Some("all") => StateFilter::All,
            Some("live") => StateFilter::Live,
            Some("ended") => StateFilter::Ended,
            Some("idle") => StateFilter::Idle,
            Some(word) => match Outcome::parse(word) {
                Some(outcome) => StateFilter::Outcome(outcome),
                None => {
                    return Err(ApiError::invalid(
                        "state",
                        "must be `live`, `ended`, `all`, `idle`, `succeeded`, `failed` or `cancelled`",
                    ))
                }
            },
        };
        let limit = query.count("limit")?.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid("limit", format!("must be between 1 and {MAX_LIMIT}")));
        }
        let before = match query.single("before")? {
            None | Some("") => None,
            Some(text) => Some(
                decode_cursor(text)
                    .ok_or_else(|| ApiError::invalid("before", "is not a cursor this service issued"))?,
            ),
        };
        let filter = Filter {
            log_type: query.single("type")?.filter(|t| !t.is_empty()).map(str::to_owned),
            state,
            q: query.single("q")?.filter(|q| !q.is_empty()).map(str::to_lowercase),
        };
        Ok(Self { filter, limit: usize::try_from(limit).unwrap_or(usize::MAX), before })
    }
}

/// The access check's answers for one request (or one index stream), by log.
#[derive(Default)]
pub(super) struct Readable {
    known: HashMap<LogKey, bool>,
}

impl Readable {
    /// Whether the caller may read `key`. Missing credentials (401) or an undecidable check
    /// (503) are errors of the whole request; a 403 only hides this log.
    pub async fn allows(
        &mut self,
        request: &Incoming,
        query: &Query,
        key: &LogKey,
    ) -> Result<bool, ApiError> {
        if let Some(known) = self.known.get(key) {
            return Ok(*known);
        }
        let allowed = match request.authorize(query, key, Action::Read).await {
            Ok(()) => true,
            Err(ApiError::Forbidden(_)) => false,
            Err(other) => return Err(other),
        };
        if self.known.len() >= KNOWN_LIMIT {
            self.known.clear();
        }
        self.known.insert(key.clone(), allowed);
        Ok(allowed)
    }

    /// Up to `limit` readable logs after the cursor, and the cursor of the next page if any.
    pub async fn page(
        &mut self,
        request: &Incoming,
        query: &Query,
        params: &ListParams,
    ) -> Result<(Vec<Summary>, Option<Position>), ApiError> {
        let index = &request.state.service.index;
        let mut out: Vec<Summary> = Vec::new();
        let mut after = params.before.clone();
        let mut checks = 0;
        loop {
            // One more than needed: whether a next page exists is known without another pass.
            let batch = index.page(&params.filter, after.as_ref(), params.limit + 1);
            let exhausted = batch.len() <= params.limit;
            for summary in batch {
                if checks == MAX_CHECKS {
                    return Ok((out, after));
                }
                checks += 1;
                after = Some(summary.position.clone());
                let key = LogKey::new(summary.log_type.clone(), summary.id.clone());
                if self.allows(request, query, &key).await? {
                    out.push(summary);
                    if out.len() > params.limit {
                        out.pop();
                        let next = out.last().map(|s| s.position.clone());
                        return Ok((out, next));
                    }
                }
            }
            if exhausted {
                return Ok((out, None));
            }
        }
    }
}
