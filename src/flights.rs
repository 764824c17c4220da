//! Shared reads: requests that arrive together for the same answer about an ended log (its tail,
//! a page of it) make one MongoDB read, whose result every one of them gets.
//!
//! A finished deploy's log is what everybody opens at once; each of them asking MongoDB the same
//! question is a storm of identical reads. Only ended logs share: their answer no longer changes,
//! so a request that joins a read already under way gets what a read of its own would. The read
//! runs in a task of its own, so the request that started it may go away without failing the
//! others; it leaves the map when it ends (a later request reads afresh).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, FutureExt, Shared};
use mongodb::error::Result;

type Flight<V> = Shared<BoxFuture<'static, Result<V>>>;

/// The reads under way, by what they answer.
#[derive(Debug)]
pub(crate) struct Flights<K, V: Clone> {
    running: Arc<Mutex<HashMap<K, Flight<V>>>>,
}

impl<K, V: Clone> Default for Flights<K, V> {
    fn default() -> Self {
        Self { running: Arc::default() }
    }
}

impl<K, V> Flights<K, V>
where
    K: Hash + Eq + Clone + Send + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The answer of the read of `key` under way, or of `read`, started now.
    pub async fn read<F>(&self, key: K, read: F) -> Result<V>
    where
        F: Future<Output = Result<V>> + Send + 'static,
    {
        let flight = {
            let mut running = lock(&self.running);
            match running.get(&key) {
                Some(flight) => flight.clone(),
                None => {
                    let (map, done) = (self.running.clone(), key.clone());
                    let task = tokio::spawn(async move {
                        let answer = read.await;
                        lock(&map).remove(&done);
                        answer
                    });
                    let flight = async move {
                        // The task is never aborted; a panic in it is passed on.
                        task.await.unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()))
                    }
                    .boxed()
                    .shared();
                    running.insert(key, flight.clone());
                    flight
                }
            }
        };
        flight.await
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
