//! What every handler of the fake Zoho shares: its data, options, statistics, tokens and channels, each behind
//! its own lock. The server and the handlers import it; it imports only the state types.

use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

use super::faults::Limits;
use super::notify::Notifier;
use super::pages::PageTokens;
use super::store::Store;
use super::tokens::{AuthState, Credentials};
use super::{ZohoOptions, ZohoStats};
use crate::seed::ZohoSeed;

pub struct Shared {
    base_url: RwLock<String>,
    pub creds: Credentials,
    pub opts: RwLock<ZohoOptions>,
    data: Mutex<Store>,
    pub stats: Arc<Mutex<ZohoStats>>,
    auth: Mutex<AuthState>,
    pages: Mutex<PageTokens>,
    pub limits: Limits,
    pub notifier: Notifier,
}

pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the whole fake down with poisoned locks.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(seed: ZohoSeed, opts: ZohoOptions, creds: Credentials) -> Shared {
        let stats = Arc::new(Mutex::new(ZohoStats::default()));
        Shared {
            base_url: RwLock::new(String::new()),
            creds,
            limits: Limits::new(opts.fault_seed),
            opts: RwLock::new(opts),
            data: Mutex::new(Store::from_seed(seed)),
            notifier: Notifier::new(stats.clone()),
            stats,
            auth: Mutex::new(AuthState::default()),
            pages: Mutex::new(PageTokens::default()),
        }
    }

    pub fn base_url(&self) -> String {
        self.base_url.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn set_base_url(&self, url: String) {
        *self.base_url.write().unwrap_or_else(|e| e.into_inner()) = url;
    }
    pub fn opts(&self) -> RwLockReadGuard<'_, ZohoOptions> {
        self.opts.read().unwrap_or_else(|e| e.into_inner())
    }
    pub fn data(&self) -> MutexGuard<'_, Store> {
        lock(&self.data)
    }
    pub fn stats_mut(&self) -> MutexGuard<'_, ZohoStats> {
        lock(&self.stats)
    }
    pub fn auth(&self) -> MutexGuard<'_, AuthState> {
        lock(&self.auth)
    }
    pub fn pages(&self) -> MutexGuard<'_, PageTokens> {
        lock(&self.pages)
    }
}
