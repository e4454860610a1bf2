//! The error a client gives when the configuration it was built from leaves out what it needs to connect
//! (`config` builds `zoho::ZohoConfig` and `moodle::MoodleConfig` from the environment and the config file).

/// A client cannot be built from the configuration it was given. A mistake the user fixes (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ClientConfigError {
    #[error("missing configuration: {missing}\n  hint: {hint}")]
    Missing { missing: String, hint: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}
