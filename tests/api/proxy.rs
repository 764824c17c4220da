//! The counting proxy's own check (tests/api/mongo_proxy.rs): a known sequence of driver calls
//! gives known counts, and the hub-like change stream is counted apart from reads.

use bson::doc;
use futures_util::{StreamExt, TryStreamExt};

use crate::helpers::{mongodb_uri, PATIENCE};
use crate::mongo_proxy::MongoProxy;

#[tokio::test]
async fn the_proxy_counts_each_driver_command_by_name_and_tells_the_change_stream_apart() {
    let proxy = MongoProxy::start(&mongodb_uri()).await;
    let client = mongodb::Client::with_uri_str(proxy.uri()).await.unwrap();
    let database = client.database(&format!("test_{}", uuid::Uuid::new_v4().simple()));
    let lines = database.collection::<bson::Document>("sse_logs");
    let mut changes = lines.watch().await.unwrap();

    lines.insert_many((1..=5).map(|n| doc! { "n": n })).await.unwrap();
    // Batches of 2: the first in the find's reply, then two getMores (the last one ends it).
    let cursor = lines.find(doc! {}).sort(doc! { "n": 1 }).batch_size(2).await.unwrap();
    let found: Vec<bson::Document> = cursor.try_collect().await.unwrap();
    assert_eq!(found.len(), 5, "the proxy passes replies on whole");
    assert_eq!(lines.count_documents(doc! {}).await.unwrap(), 5);
    let first = tokio::time::timeout(PATIENCE, changes.next()).await.unwrap().unwrap().unwrap();
    assert_eq!(first.full_document.unwrap().get_i32("n").unwrap(), 1);

    let counts = proxy.counts();
    assert_eq!(proxy.count("insert"), 1, "{counts:?}");
    assert_eq!(proxy.count("find"), 1, "{counts:?}");
    assert_eq!(proxy.count("getMore"), 2, "{counts:?}");
    // count_documents is an aggregate; watch() is one too, counted apart with its getMores.
    assert_eq!(proxy.count("aggregate"), 1, "{counts:?}");
    assert_eq!(proxy.count("aggregate $changeStream"), 1, "{counts:?}");
    assert!(proxy.count("getMore $changeStream") >= 1, "{counts:?}");
    assert_eq!(proxy.queries(), 4, "{counts:?}");
    assert!(proxy.count("hello") >= 1, "the handshake is seen too: {counts:?}");
    database.drop().await.unwrap();
}
