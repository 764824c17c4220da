//! The claims: one document per (webhook, log, event) in `sse_logs_notifications`.
//!
//! Inserting the document is the claim: the unique index of migration 0003 lets exactly one of
//! N replicas win, whichever saw the event first. The winner holds a lease (`lease_until`) while
//! it attempts; after a failed attempt the lease runs to the next retry time (`next_at`), so at
//! that time any process may take the delivery up: the claimer if it is alive, another replica
//! or the next start if it is not. Every attempt's answer is recorded on the document.

use std::time::{Duration, SystemTime};

use bson::oid::ObjectId;
use bson::spec::BinarySubtype;
use bson::{doc, Binary, Bson, DateTime, Document};
use mongodb::error::{ErrorKind, Result, WriteFailure};
use mongodb::options::ReturnDocument;
use mongodb::{Collection, Database};

use super::rules::Event;
use super::NOTIFICATIONS;
use crate::log::LogKey;

/// MongoDB's code for a unique index refusing a second document.
const DUPLICATE_KEY: i32 = 11000;

/// The `sse_logs_notifications` collection, as one process sees it.
#[derive(Debug, Clone)]
pub(crate) struct Claims {
    collection: Collection<Document>,
    /// Who this process is, in `owner`: a lease is renewed or released only by its holder.
    owner: String,
    lease: Duration,
}

/// A delivery this process holds the lease of.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub oid: ObjectId,
    /// The rule's id (`Rule::id`).
    pub webhook: String,
    pub body: Vec<u8>,
    /// Attempts made so far, by any process.
    pub attempts: u32,
    /// When it was claimed: the retry schedule counts from here.
    pub created: SystemTime,
}

/// What an attempt's answer makes of a delivery.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    Delivered(u16),
    /// Not delivered; the next attempt is due at the time given.
    Retry(Option<u16>, SystemTime),
    /// Not delivered and `notify.retry_secs` has run out (or the webhook is no longer configured).
    GaveUp(Option<u16>),
}

impl Claims {
    /// `lease` must outlast an attempt (`ATTEMPT_TIMEOUT`) and its recording, or a second process
    /// could attempt while the first still waits for its answer.
    pub fn new(database: &Database, lease: Duration) -> Self {
        Self {
            collection: database.collection(NOTIFICATIONS),
            owner: format!("{}-{}", std::process::id(), ObjectId::new().to_hex()),
            lease,
        }
    }

    /// Claims the delivery of `event` of `key` to `webhook`, with its body; `None` when it is
    /// claimed already (by this process or another).
    pub async fn claim(
        &self,
        webhook: &str,
        key: &LogKey,
        event: Event,
        body: Vec<u8>,
    ) -> Result<Option<Claim>> {
        let now = SystemTime::now();
        let claim = doc! {
            "webhook": webhook,
            "type": &key.log_type,
            "id": &key.id,
            "event": event.as_str(),
            "state": "pending",
            "body": Binary { subtype: BinarySubtype::Generic, bytes: body.clone() },
            "attempts": 0,
            "created_at": DateTime::from_system_time(now),
            "next_at": DateTime::from_system_time(now),
            "lease_until": DateTime::from_system_time(now + self.lease),
            "owner": &self.owner,
            "last_status": Bson::Null,
        };
        match self.collection.insert_one(claim).await {
            Ok(inserted) => {
                let oid = inserted.inserted_id.as_object_id().unwrap_or_default();
                Ok(Some(Claim { oid, webhook: webhook.to_owned(), body, attempts: 0, created: now }))
            }
            Err(err) if is_duplicate(&err) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Takes the lease of one pending delivery that is due and whose lease has run out, leaving
    /// out the webhooks in `busy`.
    pub async fn take_due(&self, busy: &[String]) -> Result<Option<Claim>> {
        let now = DateTime::now();
        let filter = doc! {
            "state": "pending",
            "next_at": { "$lte": now },
            "lease_until": { "$lte": now },
            "webhook": { "$nin": busy },
        };
        let lease_until = DateTime::from_system_time(SystemTime::now() + self.lease);
        let taken = self
            .collection
            .find_one_and_update(
                filter,
                doc! { "$set": { "owner": &self.owner, "lease_until": lease_until } },
            )
            .sort(doc! { "next_at": 1 })
            .return_document(ReturnDocument::After)
            .await?;
        Ok(taken.as_ref().and_then(claim_of))
    }

    /// Gives a delivery back untried (this process has no room for it now): any process's next
    /// scan may take it.
    pub async fn release(&self, claim: &Claim) -> Result<()> {
        let held = doc! { "_id": claim.oid, "owner": &self.owner, "state": "pending" };
        self.collection.update_one(held, doc! { "$set": { "lease_until": DateTime::now() } }).await?;
        Ok(())
    }

    /// Records an attempt's answer.
    pub async fn record(&self, claim: &Claim, outcome: Outcome) -> Result<()> {
        let attempts = i64::from(claim.attempts);
        let status = |s: Option<u16>| s.map_or(Bson::Null, |s| Bson::Int32(i32::from(s)));
        let now = DateTime::now();
        let set = match outcome {
            Outcome::Delivered(s) => doc! {
                "state": "delivered", "attempts": attempts, "last_status": i32::from(s), "done_at": now,
            },
            Outcome::Retry(s, at) => {
                let at = DateTime::from_system_time(at);
                doc! { "attempts": attempts, "last_status": status(s), "next_at": at, "lease_until": at }
            }
            Outcome::GaveUp(s) => doc! {
                "state": "gave_up", "attempts": attempts, "last_status": status(s), "done_at": now,
            },
        };
        let held = doc! { "_id": claim.oid, "owner": &self.owner, "state": "pending" };
        self.collection.update_one(held, doc! { "$set": set }).await?;
        Ok(())
    }

    /// When the oldest delivery still pending was claimed.
    pub async fn oldest_pending(&self) -> Result<Option<SystemTime>> {
        let oldest = self
            .collection
            .find_one(doc! { "state": "pending" })
            .sort(doc! { "created_at": 1 })
            .projection(doc! { "created_at": 1 })
            .await?;
        Ok(oldest.and_then(|d| d.get_datetime("created_at").ok().map(|t| t.to_system_time())))
    }
}

fn claim_of(document: &Document) -> Option<Claim> {
    Some(Claim {
        oid: document.get_object_id("_id").ok()?,
        webhook: document.get_str("webhook").ok()?.to_owned(),
        body: document.get_binary_generic("body").ok()?.clone(),
        attempts: match document.get("attempts") {
            Some(Bson::Int32(n)) => u32::try_from(*n).unwrap_or(0),
            Some(Bson::Int64(n)) => u32::try_from(*n).unwrap_or(0),
            _ => 0,
        },
        created: document.get_datetime("created_at").ok()?.to_system_time(),
    })
}

fn is_duplicate(err: &mongodb::error::Error) -> bool {
    match &*err.kind {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == DUPLICATE_KEY,
        ErrorKind::Command(e) => e.code == DUPLICATE_KEY,
        _ => false,
    }
}
