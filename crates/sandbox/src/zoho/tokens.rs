//! The fake's OAuth state: the client's credentials, and the access tokens it has issued (§1.1).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::random_token;

pub struct Credentials {
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
}

#[derive(Default)]
pub struct AuthState {
    /// Active access tokens, oldest first, with their expiry.
    tokens: VecDeque<(String, Instant)>,
    pub(super) refreshes: VecDeque<Instant>,
}

impl AuthState {
    pub fn expire_all(&mut self) {
        let past = Instant::now().checked_sub(Duration::from_secs(1)).unwrap_or_else(Instant::now);
        for t in &mut self.tokens {
            t.1 = past;
        }
    }

    pub(super) fn mint(&mut self, ttl: Duration, max_active: usize) -> String {
        let token = format!("1000.{}.{}", random_token(32).to_lowercase(), random_token(32).to_lowercase());
        self.tokens.push_back((token.clone(), Instant::now() + ttl));
        // The 16th token evicts the oldest (§1.1): parallel refreshes then break each other's calls.
        while self.tokens.len() > max_active.max(1) {
            self.tokens.pop_front();
        }
        token
    }

    /// `None` when unknown (never issued or evicted), else whether it is still valid.
    pub(super) fn valid(&self, token: &str) -> Option<bool> {
        self.tokens.iter().find(|(t, _)| t == token).map(|(_, exp)| Instant::now() < *exp)
    }
}
