//! The async boundary (design.md): network phases run on tokio, the store is synchronous and must never be
//! called inside a tokio task (the `postgres` crate runs its own runtime and panics there). [`serve`] runs the
//! async part on its own runtime in a helper thread while the calling thread serves store calls sent through
//! a [`StoreBridge`], one at a time, in order.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{CachedToken, Store, StoreError};
use crate::zoho::auth::{BoxFuture, TokenCache};

type Job = Box<dyn FnOnce(&dyn Store) + Send>;

/// Jobs queued at once: enough to keep the store busy, small enough that pages waiting to be stored do not
/// pile up in memory (senders wait when it is full).
const QUEUE: usize = 16;

#[derive(Debug, thiserror::Error)]
#[error("the store thread has stopped")]
pub struct BridgeClosed;

/// An async handle to the synchronous store. Cheap to clone.
#[derive(Clone)]
pub struct StoreBridge {
    tx: mpsc::Sender<Job>,
}

impl StoreBridge {
    /// Runs `f` on the store thread and returns its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> R + Send + 'static,
    ) -> Result<R, BridgeClosed> {
        let (otx, orx) = oneshot::channel();
        let job: Job = Box::new(move |s| {
            let _ = otx.send(f(s));
        });
        self.tx.send(job).await.map_err(|_| BridgeClosed)?;
        orx.await.map_err(|_| BridgeClosed)
    }

    /// Like [`StoreBridge::call`] for store operations, folding a closed bridge into the store's error.
    pub async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        self.call(f).await.map_err(|_| StoreError::Closed)?
    }
}

/// Runs `net(bridge)` to completion on a fresh multi-threaded tokio runtime in a helper thread while this
/// thread serves the bridge's store calls. Returns what `net` returned.
pub fn serve<T, F, Fut>(store: &dyn Store, net: F) -> std::io::Result<T>
where
    T: Send,
    F: FnOnce(StoreBridge) -> Fut + Send,
    Fut: Future<Output = T>,
{
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            let out = rt.block_on(net(StoreBridge { tx }));
            // Dropping the runtime drops any task still holding a bridge, which ends the serving loop below.
            drop(rt);
            out
        });
        while let Some(job) = rx.blocking_recv() {
            job(store);
        }
        match worker.join() {
            Ok(out) => Ok(out),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// The store's `zoho_tokens` as the Zoho client's token cache. Failures are logged, never fatal: without the
/// cache the client simply refreshes.
impl TokenCache for StoreBridge {
    fn load(&self, client_id: String) -> BoxFuture<'_, Option<CachedToken>> {
        Box::pin(async move {
            match self.run(move |s| s.zoho_token(&client_id)).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!("cannot read the cached Zoho token: {e}");
                    None
                }
            }
        })
    }

    fn save(&self, token: CachedToken) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Err(e) = self.run(move |s| s.put_zoho_token(&token)).await {
                tracing::warn!("cannot cache the Zoho token: {e}");
            }
        })
    }
}

/// The bridge as a shareable token cache.
pub fn token_cache(bridge: &StoreBridge) -> Arc<dyn TokenCache> {
    Arc::new(bridge.clone())
}
