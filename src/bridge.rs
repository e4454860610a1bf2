//! The async boundary: network phases run on tokio, the store is synchronous and must never be
//! called inside a tokio task (the `postgres` crate runs its own runtime and panics there). [`serve`] runs the
//! async part on the process's one network runtime ([`runtime`]) from a helper thread while the calling thread
//! (and, for a store that takes calls at once, a few more) serves store calls sent through a [`StoreBridge`].
//! A task's calls run in the order it awaits them; calls of different tasks may run at the same time on a store
//! whose [`Store::parallel_calls`] is above one (PostgreSQL: each call a round trip and server time, which one
//! thread would otherwise add up), and one after the other on SQLite (one connection).
//!
//! This is the binary's adapter between the clients and the store: it knows both, neither knows it.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, StoreError};
use crate::zoho::auth::{BoxFuture, CachedToken, TokenCache};

type Job = Box<dyn FnOnce(&dyn Store) + Send>;

/// What the store thread is sent: a job, a request to wait for the calls under way ([`StoreBridge::settle`]),
/// or (from [`serve`] itself) word that the network part has finished.
enum Msg {
    Job(Job),
    Settle(oneshot::Sender<()>),
    Done,
}

/// Worker threads of the network runtime: the clients wait on the network, not on the CPU.
const WORKERS: usize = 2;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The process's one network runtime, built on first use and kept until the process ends: every snapshot,
/// apply, `zoho` command and doctor check of a process runs on it (a receiver's incremental runs too), where
/// each used to build and tear down its own.
pub fn runtime() -> std::io::Result<&'static Runtime> {
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(WORKERS).enable_all().build()?;
    // Two threads may race to build it; the loser's runtime is dropped here, outside any runtime.
    let _ = RUNTIME.set(rt);
    RUNTIME.get().ok_or_else(|| std::io::Error::other("the network runtime was not kept"))
}

/// Jobs queued at once: enough to keep the store busy, small enough that pages waiting to be stored do not
/// pile up in memory (senders wait when it is full).
const QUEUE: usize = 16;

#[derive(Debug, thiserror::Error)]
#[error("the store thread has stopped")]
pub struct BridgeClosed;

/// An async handle to the synchronous store. Cheap to clone.
#[derive(Clone)]
pub struct StoreBridge {
    tx: mpsc::Sender<Msg>,
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
        self.tx.send(Msg::Job(job)).await.map_err(|_| BridgeClosed)?;
        orx.await.map_err(|_| BridgeClosed)
    }

    /// Returns once every call sent before this one has finished, including those of tasks that were dropped
    /// while their call ran (on a store that serves calls side by side, such a call may still be running when
    /// its task is gone). For clean-up after a failure: what it removes is not written again behind it.
    pub async fn settle(&self) -> Result<(), BridgeClosed> {
        let (otx, orx) = oneshot::channel();
        self.tx.send(Msg::Settle(otx)).await.map_err(|_| BridgeClosed)?;
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

/// Runs `net(bridge)` to completion on the network [`runtime`] from a helper thread while this thread serves
/// the bridge's store calls. Returns what `net` returned. Store calls still queued when `net` returns are
/// served; a task `net` left behind that calls the bridge afterwards gets [`BridgeClosed`].
pub fn serve<T, F, Fut>(store: &dyn Store, net: F) -> std::io::Result<T>
where
    T: Send,
    F: FnOnce(StoreBridge) -> Fut + Send,
    Fut: Future<Output = T>,
{
    let rt = runtime()?;
    let (tx, rx) = mpsc::channel::<Msg>(QUEUE);
    let done = SendDone(tx.clone());
    let queue = Queue { rx: std::sync::Mutex::new((rx, false)), busy: Default::default(), idle: Default::default() };
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            let _done = done;
            rt.block_on(net(StoreBridge { tx }))
        });
        let helpers: Vec<_> = (1..store.parallel_calls().max(1)).map(|_| scope.spawn(|| queue.serve(store))).collect();
        queue.serve(store);
        for h in helpers {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
        match worker.join() {
            Ok(out) => Ok(out),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// The calls' queue as the servers share it.
struct Queue {
    /// The receiver, and whether [`Msg::Done`] was taken.
    rx: std::sync::Mutex<(mpsc::Receiver<Msg>, bool)>,
    /// Calls taken off the queue and not finished.
    busy: std::sync::Mutex<usize>,
    idle: std::sync::Condvar,
}

impl Queue {
    /// Takes calls off the queue and runs them until [`Msg::Done`]. Done queues behind every call `net` sent, so
    /// a call taken after it came from a task left behind: it is dropped unrun (its caller gets
    /// [`BridgeClosed`]), and the closed queue stops every server.
    fn serve(&self, store: &dyn Store) {
        loop {
            // The queue's lock is held while waiting for the next message, never while a call runs; a call is
            // counted busy before the lock is let go, so a settle taken after it waits for it.
            let mut queue = self.rx.lock().unwrap_or_else(|e| e.into_inner());
            let (rx, done) = &mut *queue;
            match rx.blocking_recv() {
                Some(Msg::Job(job)) if !*done => {
                    let _busy = Busy::new(self);
                    drop(queue);
                    job(store);
                }
                Some(Msg::Job(_)) => {}
                Some(Msg::Settle(reply)) => {
                    drop(queue);
                    let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
                    while *busy > 0 {
                        busy = self.idle.wait(busy).unwrap_or_else(|e| e.into_inner());
                    }
                    let _ = reply.send(());
                }
                Some(Msg::Done) => {
                    *done = true;
                    rx.close();
                }
                None => return,
            }
        }
    }
}

/// A call under way: counted while it lives, so that a call that panics is not waited for by a settle forever.
struct Busy<'q>(&'q Queue);

impl<'q> Busy<'q> {
    fn new(queue: &'q Queue) -> Busy<'q> {
        *queue.busy.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        Busy(queue)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        let mut busy = self.0.busy.lock().unwrap_or_else(|e| e.into_inner());
        *busy -= 1;
        if *busy == 0 {
            self.0.idle.notify_all();
        }
    }
}

/// Sends [`Msg::Done`] when dropped, after `net` returned or panicked: it queues behind every job `net` sent and
/// ends the serving loop even if a task still holds a bridge.
struct SendDone(mpsc::Sender<Msg>);

impl Drop for SendDone {
    fn drop(&mut self) {
        let _ = self.0.blocking_send(Msg::Done);
    }
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
