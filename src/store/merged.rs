//! Two line cursors read as one, in `_id` order: a log whose id is stored both as a number and
//! as text is read with one query per form (each on the `{type, id, _id}` index) and merged.

use mongodb::error::Result;

use super::{LineCursor, Stored};

/// The other cursor, and the next document of each side once read (`Some(None)`: it ended).
pub(super) struct Merge {
    other: LineCursor,
    mine: Option<Option<Stored>>,
    theirs: Option<Option<Stored>>,
}

impl LineCursor {
    /// This cursor and `other` (each in `_id` order, without a merge of its own) as one.
    pub(super) fn merged(mut self, other: LineCursor) -> LineCursor {
        self.merge = Some(Box::new(Merge { other, mine: None, theirs: None }));
        self
    }
}

/// The next document of `cursor` merged with `merge`'s other side. A failure leaves the merge
/// behind: the caller starts a new read after one.
pub(super) async fn next(cursor: &mut LineCursor, mut merge: Box<Merge>) -> Result<Option<Stored>> {
    if merge.mine.is_none() {
        merge.mine = Some(cursor.next_here().await?);
    }
    if merge.theirs.is_none() {
        merge.theirs = Some(merge.other.next_here().await?);
    }
    let take_mine = match (&merge.mine, &merge.theirs) {
        (Some(Some(mine)), Some(Some(theirs))) => order(mine) <= order(theirs),
        (Some(Some(_)), _) => true,
        _ => false,
    };
    let next = if take_mine { merge.mine.take() } else { merge.theirs.take() };
    let next = next.flatten();
    if next.is_some() {
        cursor.merge = Some(merge);
    }
    Ok(next)
}

/// Where a document sorts: by `_id` (a range only matches ObjectIds, so an unreadable one,
/// without one, cannot come up; it would go first, as `_id` order puts other types first).
fn order(stored: &Stored) -> Option<bson::oid::ObjectId> {
    match stored {
        Stored::Line(line) => Some(line.oid),
        Stored::Unreadable => None,
    }
}
