//! Database migrations: MongoDB commands kept in `migrations/`, applied in order, once each.
//!
//! Each file is one command document; `${collection}` stands for the configured collection.
//! Applied names are recorded by the store, so `migrate` is idempotent and several replicas
//! starting together at worst run the same idempotent command twice.

use bson::Document;
use mongodb::error::Result;

use crate::store::Store;

/// The migrations, in the order they apply. Embedded so the binary needs no files at run time.
/// 0002 makes a stored position unique within its log, so two replicas appending to one log at
/// once cannot both store line `n`: the second insert fails and is retried after the first.
/// 0003 is on the contract's fixed `sse_logs_notifications`: one document per (webhook, log,
/// event), unique so that of N replicas claiming a delivery exactly one wins; the second index
/// finds the pending deliveries due for an attempt.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_log_index", include_str!("../migrations/0001_log_index.json")),
    ("0002_log_positions", include_str!("../migrations/0002_log_positions.json")),
    ("0003_notifications", include_str!("../migrations/0003_notifications.json")),
];

/// Applies what has not been applied yet; returns the names it applied.
pub(crate) async fn apply(store: &Store) -> Result<Vec<&'static str>> {
    let mut applied = Vec::new();
    for (name, template) in MIGRATIONS {
        if store.migration_applied(name).await? {
            continue;
        }
        store.apply_migration(name, render(template, store.collection_name())).await?;
        tracing::info!(migration = name, "migration applied");
        applied.push(*name);
    }
    Ok(applied)
}

fn render(template: &str, collection: &str) -> Document {
    let json = template.replace("${collection}", &collection.replace('"', "\\\""));
    let value: serde_json::Value =
        serde_json::from_str(&json).expect("migrations are valid JSON (unit-tested)");
    bson::to_document(&value).expect("a JSON object is a BSON document")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_renders_to_a_command_on_the_configured_collection() {
        for (name, template) in MIGRATIONS {
            let command = render(template, "my_logs");
            let first = command.keys().next().map(String::as_str);
            assert!(first.is_some(), "{name} is empty");
            let target = command.get_str(first.unwrap()).unwrap();
            assert!(target == "my_logs" || target == "sse_logs_notifications", "{name}: {target}");
        }
    }

    #[test]
    fn the_notification_claims_are_unique_per_webhook_log_and_event() {
        let command = render(MIGRATIONS[2].1, "my_logs");
        assert_eq!(command.get_str("createIndexes").unwrap(), "sse_logs_notifications");
        let index = command.get_array("indexes").unwrap()[0].as_document().unwrap().clone();
        assert_eq!(
            index.get_document("key").unwrap().keys().collect::<Vec<_>>(),
            ["webhook", "type", "id", "event"]
        );
        assert_eq!(index.get_bool("unique"), Ok(true));
    }

    #[test]
    fn the_first_migration_creates_the_log_index() {
        let command = render(MIGRATIONS[0].1, "sse_logs");
        let index = &command.get_array("indexes").unwrap()[0];
        let key = index.as_document().unwrap().get_document("key").unwrap();
        assert_eq!(key.keys().collect::<Vec<_>>(), ["type", "id", "_id"]);
    }
}
