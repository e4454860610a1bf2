//! Page tokens: where a listing stopped, bound to the query that produced it (§3).

use std::collections::HashMap;
use std::time::Instant;

use super::random_token;
use super::store::Id;

const MAX_STORED_TOKENS: usize = 50_000;

/// Where a listing stopped, bound to the query that produced it.
#[derive(Debug, Clone)]
pub struct PageToken {
    pub binding: String,
    pub last: SortKey,
    pub delivered: usize,
    pub expires: Instant,
}

#[derive(Default)]
pub struct PageTokens {
    map: HashMap<String, PageToken>,
}

/// Sort key of a record: the sort field as an instant in seconds (0 for `id`), then the id.
pub type SortKey = (i64, Id);

#[derive(Debug, PartialEq)]
pub enum TokenError {
    Unknown,
    Mismatch,
    Expired,
    PastLimit,
}

impl PageTokens {
    pub fn issue(&mut self, t: PageToken) -> String {
        if self.map.len() >= MAX_STORED_TOKENS {
            let now = Instant::now();
            self.map.retain(|_, t| t.expires > now);
        }
        let key = format!("{}{}", random_token(24).to_lowercase(), random_token(24).to_lowercase());
        self.map.insert(key.clone(), t);
        key
    }

    /// The stored position, if the token is known, unexpired, bound to this query and under the limit.
    pub fn resolve(&self, token: &str, binding: &str, limit: usize) -> Result<PageToken, TokenError> {
        let t = self.map.get(token).ok_or(TokenError::Unknown)?;
        check_token(t, binding, limit, Instant::now())
    }
}

pub(super) fn check_token(t: &PageToken, binding: &str, limit: usize, now: Instant) -> Result<PageToken, TokenError> {
    if t.binding != binding {
        return Err(TokenError::Mismatch);
    }
    if now >= t.expires {
        return Err(TokenError::Expired);
    }
    if t.delivered >= limit {
        return Err(TokenError::PastLimit);
    }
    Ok(t.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn token_checks_in_order() {
        let now = Instant::now();
        let t = PageToken {
            binding: "b".into(),
            last: (0, Id("1".into())),
            delivered: 200,
            expires: now + Duration::from_secs(5),
        };
        assert!(check_token(&t, "b", 1000, now).is_ok());
        assert_eq!(check_token(&t, "other", 1000, now).unwrap_err(), TokenError::Mismatch);
        assert_eq!(check_token(&t, "b", 1000, now + Duration::from_secs(6)).unwrap_err(), TokenError::Expired);
        assert_eq!(check_token(&t, "b", 200, now).unwrap_err(), TokenError::PastLimit);
    }
}
