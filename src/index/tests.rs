//! The index's bookkeeping without MongoDB: the hand-off from the start-up load to live inserts,
//! and what is announced when.

use bson::oid::ObjectId;
use tokio::sync::broadcast::error::TryRecvError;

use super::*;
use crate::log::Outcome;

fn insert(oid: ObjectId, done: bool) -> Insert {
    Insert { oid, done, ending: Ending::default(), at: None }
}

fn settings(max_logs: usize) -> IndexSettings {
    IndexSettings { window_days: 7, max_logs, idle_after_secs: 600 }
}

fn all(index: &Index) -> Vec<(String, u64, bool)> {
    index.page(&Filter::default(), None, 100).into_iter().map(|s| (s.id, s.lines, s.done)).collect()
}

#[test]
fn inserts_held_during_a_load_are_applied_once_after_it() {
    let index = Index::new(settings(10));
    let (a, b) = (LogKey::new("ci", "a"), LogKey::new("ci", "b"));
    let oids: Vec<ObjectId> = (0..4).map(|_| ObjectId::new()).collect();
    index.begin_load();
    // The aggregation saw a's first two lines; the change stream delivers the second and a third.
    index.record(&a, insert(oids[1], false));
    index.record(&a, insert(oids[2], false));
    index.record(&b, insert(oids[3], true));
    assert!(all(&index).is_empty(), "held, not applied, while loading");
    let stats =
        LogStats { key: a, first: oids[0], last: oids[1], lines: 2, done: false, ending: Ending::default() };
    assert!(!index.finish_load(0, vec![stats.clone()]), "a stale generation is refused");
    assert!(index.finish_load(1, vec![stats]));
    assert_eq!(all(&index), [("b".into(), 1, true), ("a".into(), 3, false)]);
    assert!(*index.watch_ready().borrow());
}

#[test]
fn a_start_and_an_end_are_announced_at_once_growth_at_most_once_a_second() {
    let index = Index::new(settings(10));
    index.begin_load();
    assert!(index.finish_load(1, Vec::new()));
    let mut changes = index.changes();
    let key = LogKey::new("deploy", "1");
    index.record(&key, insert(ObjectId::new(), false));
    assert!(matches!(changes.try_recv(), Ok(Change::Log(s)) if s.lines == 1));
    index.record(&key, insert(ObjectId::new(), false));
    assert!(matches!(changes.try_recv(), Err(TryRecvError::Empty)), "growth waits for its second");
    index.flush_pending();
    assert!(matches!(changes.try_recv(), Err(TryRecvError::Empty)), "not yet a second");
    index.record(&key, insert(ObjectId::new(), true));
    assert!(matches!(changes.try_recv(), Ok(Change::Log(s)) if s.lines == 3 && s.done));
}

#[test]
fn past_max_logs_the_least_recently_updated_are_forgotten() {
    let index = Index::new(settings(2));
    index.begin_load();
    assert!(index.finish_load(1, Vec::new()));
    for id in ["1", "2", "3"] {
        index.record(&LogKey::new("ci", id), insert(ObjectId::new(), false));
    }
    index.record(&LogKey::new("ci", "2"), insert(ObjectId::new(), false));
    assert_eq!(all(&index), [("2".into(), 2, false), ("3".into(), 1, false)]);
    assert_eq!(index.len(), 2);
}

#[test]
fn a_silent_live_log_turns_idle_once_and_its_next_line_wakes_it_up() {
    let index = Index::new(settings(10));
    index.begin_load();
    assert!(index.finish_load(1, Vec::new()));
    let mut changes = index.changes();
    let (live, ended) = (LogKey::new("ci", "live"), LogKey::new("ci", "ended"));
    index.record(&live, insert(ObjectId::new(), false));
    index.record(&ended, insert(ObjectId::new(), true));
    while changes.try_recv().is_ok() {}
    let idle_at = SystemTime::now() + Duration::from_secs(601);
    index.mark_idle(&mut index.lock(), SystemTime::now());
    assert!(matches!(changes.try_recv(), Err(TryRecvError::Empty)), "not silent long enough yet");
    index.mark_idle(&mut index.lock(), idle_at);
    assert!(matches!(changes.try_recv(), Ok(Change::Log(s)) if s.id == "live" && s.idle && !s.done));
    index.mark_idle(&mut index.lock(), idle_at);
    assert!(
        matches!(changes.try_recv(), Err(TryRecvError::Empty)),
        "idle is announced once; ended logs never"
    );
    let idle = Filter { state: StateFilter::Idle, ..Filter::default() };
    assert_eq!(index.page(&idle, None, 10).len(), 1);
    index.record(&live, insert(ObjectId::new(), false));
    assert!(matches!(changes.try_recv(), Ok(Change::Log(s)) if s.id == "live" && !s.idle && s.lines == 2));
    assert!(index.page(&idle, None, 10).is_empty());
}

#[test]
fn an_ended_log_is_listed_with_its_outcome_and_filtered_by_it() {
    let index = Index::new(settings(10));
    index.begin_load();
    assert!(index.finish_load(1, Vec::new()));
    let failed = Ending { outcome: Some(Outcome::Failed), exit_code: Some(2) };
    let key = LogKey::new("ci", "f");
    index.record(&key, insert(ObjectId::new(), false));
    index.record(&key, Insert { oid: ObjectId::new(), done: true, ending: failed, at: None });
    let with = |state| index.page(&Filter { state, ..Filter::default() }, None, 10);
    assert_eq!(with(StateFilter::Outcome(Outcome::Failed))[0].ending, failed);
    assert!(with(StateFilter::Outcome(Outcome::Succeeded)).is_empty());
    assert!(with(StateFilter::Live).is_empty());
    assert_eq!(with(StateFilter::Ended).len(), 1);
}
