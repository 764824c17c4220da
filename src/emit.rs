//! The one way a stream of this service is made: an async function that emits items.
//!
//! A session, or the index feed, is written as plain async code that calls
//! [`Emitter::emit`]; [`emitted`] turns it into a `Stream` whose `poll_next` runs that code
//! until it emits. It is not a task: it runs when (and only when) the response body is polled,
//! by the connection's own task, so a new item costs one wake-up between the hub and the socket,
//! an idle stream holds only its state, a slow client holds it back (the hub then drops it and
//! it catches up later) and dropping the body (the client left) drops it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::Stream;
use sync_wrapper::SyncWrapper;

/// Where the running code leaves its next item for the stream to take.
#[derive(Debug)]
struct Slot<T> {
    item: Mutex<Option<T>>,
    holding: AtomicBool,
    alone: AtomicBool,
}

impl<T> Slot<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<T>> {
        self.item.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A stream that can say more of its items follow without waiting for anything new.
pub(crate) trait Hold {
    /// True while a pause before the next item is only a read in progress (see
    /// [`Emitter::hold`]): a writer may keep gathering.
    fn holding(&self) -> bool;

    /// True when the item just taken is the last one ready (see [`Emitter::last_ready`]).
    fn alone(&self) -> bool {
        false
    }
}

impl<T> Hold for Emitted<T> {
    fn holding(&self) -> bool {
        self.slot.holding.load(Ordering::Relaxed)
    }

    fn alone(&self) -> bool {
        self.slot.alone.load(Ordering::Relaxed)
    }
}

impl<S: Hold, F> Hold for futures_util::stream::Map<S, F> {
    fn holding(&self) -> bool {
        self.get_ref().holding()
    }

    fn alone(&self) -> bool {
        self.get_ref().alone()
    }
}

impl<S: Stream + Hold + Unpin> Hold for futures_util::stream::SelectAll<S> {
    fn holding(&self) -> bool {
        self.iter().any(Hold::holding)
    }
}

/// Handed to the code that makes a stream's items.
#[derive(Debug)]
pub(crate) struct Emitter<T> {
    slot: Arc<Slot<T>>,
}

impl<T> Emitter<T> {
    /// Says whether the items that follow come from a read that goes on by itself (a backlog
    /// cursor): then a pause between them is no reason to write what was gathered so far.
    pub fn hold(&self, holding: bool) {
        self.slot.holding.store(holding, Ordering::Relaxed);
    }

    /// Says whether the next item is the last one ready for now (nothing queued behind it), so
    /// the stream's reader need not ask for another before writing it.
    pub fn last_ready(&self, alone: bool) {
        self.slot.alone.store(alone, Ordering::Relaxed);
    }

    /// Hands `item` to the stream and returns when the stream is asked for the next one.
    pub async fn emit(&self, item: T) {
        let mut item = Some(item);
        std::future::poll_fn(|_| match item.take() {
            Some(item) => {
                // Pending without a wake-up: the stream takes the item in the same poll and
                // polls again when its reader wants more.
                *self.slot.lock() = Some(item);
                Poll::Pending
            }
            None if self.slot.lock().is_none() => Poll::Ready(()),
            None => Poll::Pending,
        })
        .await;
    }
}

/// The items `run` emits, as a stream that ends when `run` returns.
pub(crate) fn emitted<T, F>(run: impl FnOnce(Emitter<T>) -> F) -> Emitted<T>
where
    F: Future<Output = ()> + Send + 'static,
{
    let slot = Arc::new(Slot {
        item: Mutex::new(None),
        holding: AtomicBool::new(false),
        alone: AtomicBool::new(false),
    });
    let future = run(Emitter { slot: slot.clone() });
    Emitted { slot, run: Some(SyncWrapper::new(Box::pin(future))) }
}

/// See [`emitted`].
pub(crate) struct Emitted<T> {
    slot: Arc<Slot<T>>,
    /// The code, until it returns.
    run: Option<SyncWrapper<Pin<Box<dyn Future<Output = ()> + Send>>>>,
}

impl<T> Stream for Emitted<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        if let Some(item) = this.slot.lock().take() {
            return Poll::Ready(Some(item));
        }
        let Some(run) = this.run.as_mut() else { return Poll::Ready(None) };
        let ended = run.get_mut().as_mut().poll(cx).is_ready();
        if ended {
            this.run = None;
        }
        match this.slot.lock().take() {
            Some(item) => Poll::Ready(Some(item)),
            None if ended => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn items_come_out_in_order_and_the_stream_ends_with_the_code() {
        let stream = emitted(|out| async move {
            for n in 0..3 {
                out.emit(n).await;
                tokio::task::yield_now().await;
            }
        });
        assert_eq!(stream.collect::<Vec<u32>>().await, [0, 1, 2]);
    }

    #[tokio::test]
    async fn the_code_runs_only_as_far_as_the_reader_asks() {
        let reached = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let seen = reached.clone();
        let mut stream = emitted(move |out| async move {
            for n in 1..=3 {
                seen.store(n, std::sync::atomic::Ordering::SeqCst);
                out.emit(n).await;
            }
        });
        assert_eq!(stream.next().await, Some(1));
        assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 1, "not run ahead of the reader");
        assert_eq!(stream.next().await, Some(2));
        drop(stream);
    }
}
