//! What each client needs before it can connect, and the error when the environment leaves some of it out.
//! (`config` builds [`ZohoConfig`] and [`MoodleConfig`] from the environment and the config file.)

use crate::moodle::MoodleConfig;
use crate::zoho::ZohoConfig;
use zmsync_core::secret::Secret;

/// A client cannot be built from the configuration it was given. A mistake the user fixes (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ClientConfigError {
    #[error("missing configuration: {missing}\n  hint: {hint}")]
    Missing { missing: String, hint: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

impl ZohoConfig {
    /// The client id and both secrets, or one error naming every missing variable.
    pub fn credentials(&self) -> Result<(&str, &Secret, &Secret), ClientConfigError> {
        let mut missing = Vec::new();
        if self.client_id.is_none() {
            missing.push("ZOHO_CLIENT_ID");
        }
        if self.client_secret.is_none() {
            missing.push("ZOHO_CLIENT_SECRET");
        }
        if self.refresh_token.is_none() {
            missing.push("ZOHO_REFRESH_TOKEN");
        }
        match (&self.client_id, &self.client_secret, &self.refresh_token) {
            (Some(id), Some(secret), Some(refresh)) => Ok((id, secret, refresh)),
            _ => Err(ClientConfigError::Missing {
                missing: missing.join(", "),
                hint: "set them in the environment or in .env (a Self Client in Zoho's API console gives them)".into(),
            }),
        }
    }
}

impl MoodleConfig {
    pub fn credentials(&self) -> Result<(&str, &Secret), ClientConfigError> {
        match (&self.url, &self.token) {
            (Some(url), Some(token)) => Ok((url, token)),
            _ => {
                let mut missing = Vec::new();
                if self.url.is_none() {
                    missing.push("MOODLE_URL");
                }
                if self.token.is_none() {
                    missing.push("MOODLE_TOKEN");
                }
                Err(ClientConfigError::Missing {
                    missing: missing.join(", "),
                    hint: "set them in the environment or in .env (docs/moodle-plugin.md shows how to make the token)"
                        .into(),
                })
            }
        }
    }
}
