//! Configuration: an optional TOML file, the environment, and a `.env` file in the working directory.
//!
//! Precedence, highest first: command-line flags, the environment (a `.env` file fills in only variables
//! that are not already set), the TOML file, built-in defaults. Secrets (see [`SECRET_VARS`]) come only from
//! the environment or `.env`; a config file that names one is refused, so a secret never lands in a file
//! that gets copied, committed or backed up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use crate::moodle::MoodleConfig;
use crate::secret::Secret;
pub use crate::zoho::ZohoConfig;

/// The environment variables that hold secrets. Never printed, logged, stored or written to a report.
pub const SECRET_VARS: &[&str] = &[
    "ZOHO_CLIENT_SECRET",
    "ZOHO_REFRESH_TOKEN",
    "MOODLE_TOKEN",
    "ZOHO_WEBHOOK_HMAC_SECRET",
    "MOODLE_WEBHOOK_HMAC_SECRET",
    "ZOHO_NOTIFY_TOKEN",
];

/// Default store: an SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://zmsync.db";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}\n  hint: check the path given to --config")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error(
        "config file {path}: `{key}` is a secret and is not read from a file\n  hint: set the environment \
         variable {var} (or put it in .env) and remove `{key}` from {path}"
    )]
    SecretInFile { path: PathBuf, key: String, var: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("{path}:{line}: malformed line in .env: {message}\n  hint: each line is NAME=value (quotes optional); comments start with #")]
    DotEnv { path: PathBuf, line: usize, message: String },
}

/// Zoho data centres: `ZOHO_REGION` → (accounts URL, API domain), as Zoho's multi-DC documentation lists them.
pub const REGIONS: &[(&str, &str, &str)] = &[
    ("com", "https://accounts.zoho.com", "https://www.zohoapis.com"),
    ("eu", "https://accounts.zoho.eu", "https://www.zohoapis.eu"),
    ("in", "https://accounts.zoho.in", "https://www.zohoapis.in"),
    ("com.au", "https://accounts.zoho.com.au", "https://www.zohoapis.com.au"),
    ("jp", "https://accounts.zoho.jp", "https://www.zohoapis.jp"),
    ("ca", "https://accounts.zohocloud.ca", "https://www.zohoapis.ca"),
    ("sa", "https://accounts.zoho.sa", "https://www.zohoapis.sa"),
    ("com.cn", "https://accounts.zoho.com.cn", "https://www.zohoapis.com.cn"),
    ("uk", "https://accounts.zoho.uk", "https://www.zohoapis.uk"),
];

#[derive(Debug, Clone)]
pub struct Config {
    pub config_file: Option<PathBuf>,
    pub database_url: String,
    pub zoho: ZohoConfig,
    pub moodle: MoodleConfig,
    pub webhook: WebhookSecrets,
}

#[derive(Debug, Clone, Default)]
pub struct WebhookSecrets {
    pub zoho: Option<Secret>,
    /// The `token` of Zoho Notification API (watch) channels: the only check Zoho's callbacks carry.
    pub zoho_notify: Option<Secret>,
    pub moodle: Option<Secret>,
}

/// The config file's shape. Unknown keys are errors, so a typo is caught, named and located.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    #[serde(default)]
    zoho: FileZoho,
    #[serde(default)]
    moodle: FileMoodle,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileZoho {
    region: Option<String>,
    client_id: Option<String>,
    accounts_url: Option<String>,
    api_domain: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMoodle {
    url: Option<String>,
}

/// Where configuration values come from. `Env` is a snapshot so tests can build configs without touching
/// the process environment.
pub type Env = BTreeMap<String, String>;

/// Reads `.env` in `dir` (if present) into the process environment without overriding variables that are
/// already set. A malformed line is an error naming the file and line.
pub fn load_dotenv(dir: &Path) -> Result<Option<PathBuf>, ConfigError> {
    let path = dir.join(".env");
    if !path.exists() {
        return Ok(None);
    }
    // Parse everything first so a bad line leaves the environment untouched.
    let iter = dotenvy::from_path_iter(&path).map_err(|e| dotenv_error(&path, e))?;
    let mut pairs = Vec::new();
    for item in iter {
        pairs.push(item.map_err(|e| dotenv_error(&path, e))?);
    }
    for (k, v) in pairs {
        if std::env::var_os(&k).is_none() {
            std::env::set_var(k, v);
        }
    }
    Ok(Some(path))
}

fn dotenv_error(path: &Path, e: dotenvy::Error) -> ConfigError {
    match e {
        dotenvy::Error::LineParse(line, index) => {
            // dotenvy reports the offending text and the byte index; find the line number ourselves.
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let first = line.lines().next().unwrap_or("").trim();
            let lineno = text.lines().position(|l| !first.is_empty() && l.trim() == first).map(|n| n + 1).unwrap_or(0);
            ConfigError::DotEnv {
                path: path.to_path_buf(),
                line: lineno,
                message: format!("cannot parse `{}` (at character {index})", redact_line(first)),
            }
        }
        other => ConfigError::DotEnv { path: path.to_path_buf(), line: 0, message: other.to_string() },
    }
}

/// Shows a malformed .env line without its value, in case the value is a secret.
fn redact_line(line: &str) -> String {
    match line.split_once('=') {
        Some((name, _)) => format!("{name}=…"),
        None => line.chars().take(40).collect(),
    }
}

impl Config {
    /// Builds the configuration from an optional file, the environment and the `--database-url` flag.
    pub fn load(file: Option<&Path>, database_url_flag: Option<&str>, env: &Env) -> Result<Config, ConfigError> {
        let file_cfg = match file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let get = |name: &str| env.get(name).filter(|v| !v.trim().is_empty()).cloned();
        let secret = |name: &str| get(name).map(Secret::new);

        let region_origin;
        let region = match get("ZOHO_REGION") {
            Some(r) => {
                region_origin = "environment variable ZOHO_REGION".to_string();
                r
            }
            None => {
                region_origin = match file {
                    Some(p) => format!("config file {}: key zoho.region", p.display()),
                    None => "ZOHO_REGION".into(),
                };
                file_cfg.zoho.region.clone().unwrap_or_else(|| "com".into())
            }
        };
        let (_, default_accounts, default_api) =
            REGIONS.iter().find(|(name, _, _)| *name == region).ok_or_else(|| ConfigError::Invalid {
                origin: region_origin,
                message: format!(
                    "unknown Zoho region `{region}`; valid choices: {}",
                    REGIONS.iter().map(|r| r.0).collect::<Vec<_>>().join(", ")
                ),
            })?;

        let database_url = database_url_flag
            .map(str::to_string)
            .or_else(|| get("DATABASE_URL"))
            .or(file_cfg.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_string());

        let accounts_url =
            get("ZOHO_ACCOUNTS_URL").or(file_cfg.zoho.accounts_url).unwrap_or(default_accounts.to_string());
        let api_domain = get("ZOHO_API_DOMAIN").or(file_cfg.zoho.api_domain).unwrap_or(default_api.to_string());
        for (name, value) in [("ZOHO_ACCOUNTS_URL", &accounts_url), ("ZOHO_API_DOMAIN", &api_domain)] {
            check_url(name, value)?;
        }
        let moodle_url = get("MOODLE_URL").or(file_cfg.moodle.url);
        if let Some(u) = &moodle_url {
            check_url("MOODLE_URL", u)?;
        }

        Ok(Config {
            config_file: file.map(Path::to_path_buf),
            database_url,
            zoho: ZohoConfig {
                region,
                client_id: get("ZOHO_CLIENT_ID").or(file_cfg.zoho.client_id),
                client_secret: secret("ZOHO_CLIENT_SECRET"),
                refresh_token: secret("ZOHO_REFRESH_TOKEN"),
                accounts_url: accounts_url.trim_end_matches('/').to_string(),
                api_domain: api_domain.trim_end_matches('/').to_string(),
            },
            moodle: MoodleConfig {
                url: moodle_url.map(|u| u.trim_end_matches('/').to_string()),
                token: secret("MOODLE_TOKEN"),
            },
            webhook: WebhookSecrets {
                zoho: secret("ZOHO_WEBHOOK_HMAC_SECRET"),
                zoho_notify: secret("ZOHO_NOTIFY_TOKEN"),
                moodle: secret("MOODLE_WEBHOOK_HMAC_SECRET"),
            },
        })
    }

    /// The process environment as an [`Env`].
    pub fn process_env() -> Env {
        std::env::vars().collect()
    }
}

fn check_url(name: &str, value: &str) -> Result<(), ConfigError> {
    match url::Url::parse(value) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(()),
        _ => {
            Err(ConfigError::Invalid { origin: name.to_string(), message: format!("`{value}` is not an http(s) URL") })
        }
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    // Refuse secrets before the shape check, so the message is the helpful one.
    if let Ok(value) = text.parse::<toml::Table>() {
        for (section, var_prefix) in [("zoho", "ZOHO_"), ("moodle", "MOODLE_"), ("", "")] {
            let table = if section.is_empty() { Some(&value) } else { value.get(section).and_then(|v| v.as_table()) };
            if let Some(table) = table {
                for key in table.keys() {
                    let var = format!("{var_prefix}{}", key.to_uppercase());
                    if SECRET_VARS.contains(&var.as_str())
                        || key.to_lowercase().contains("secret")
                        || key.to_lowercase().contains("token")
                    {
                        let full = if section.is_empty() { key.clone() } else { format!("{section}.{key}") };
                        let var = if SECRET_VARS.contains(&var.as_str()) {
                            var
                        } else {
                            "the matching environment variable".into()
                        };
                        return Err(ConfigError::SecretInFile { path: path.to_path_buf(), key: full, var });
                    }
                }
            }
        }
    }
    toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn region_picks_hosts_and_overrides_win() {
        let c = Config::load(None, None, &env(&[("ZOHO_REGION", "ca")])).unwrap();
        assert_eq!(c.zoho.accounts_url, "https://accounts.zohocloud.ca");
        assert_eq!(c.zoho.api_domain, "https://www.zohoapis.ca");
        let c = Config::load(
            None,
            None,
            &env(&[
                ("ZOHO_REGION", "eu"),
                ("ZOHO_ACCOUNTS_URL", "http://127.0.0.1:9/"),
                ("ZOHO_API_DOMAIN", "http://127.0.0.1:10"),
            ]),
        )
        .unwrap();
        assert_eq!(c.zoho.accounts_url, "http://127.0.0.1:9");
        assert_eq!(c.zoho.api_domain, "http://127.0.0.1:10");
    }

    #[test]
    fn unknown_region_names_the_choices() {
        let e = Config::load(None, None, &env(&[("ZOHO_REGION", "mars")])).unwrap_err().to_string();
        assert!(e.contains("mars") && e.contains("com.au") && e.contains("ZOHO_REGION"), "{e}");
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("z.toml");
        std::fs::write(&f, "database_url = \"sqlite://file.db\"\n").unwrap();
        let c = Config::load(Some(&f), None, &env(&[])).unwrap();
        assert_eq!(c.database_url, "sqlite://file.db");
        let c = Config::load(Some(&f), None, &env(&[("DATABASE_URL", "sqlite://env.db")])).unwrap();
        assert_eq!(c.database_url, "sqlite://env.db");
        let c = Config::load(Some(&f), Some("sqlite://flag.db"), &env(&[("DATABASE_URL", "sqlite://env.db")])).unwrap();
        assert_eq!(c.database_url, "sqlite://flag.db");
        let c = Config::load(None, None, &env(&[])).unwrap();
        assert_eq!(c.database_url, DEFAULT_DATABASE_URL);
    }

    #[test]
    fn typo_in_file_names_file_key_and_choices() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("z.toml");
        std::fs::write(&f, "[zoho]\nregoin = \"eu\"\n").unwrap();
        let e = Config::load(Some(&f), None, &env(&[])).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("z.toml") && msg.contains("regoin") && msg.contains("region"), "{msg}");
        assert!(matches!(e, ConfigError::Parse { .. }), "{e:?}");
    }

    #[test]
    fn secret_in_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("z.toml");
        std::fs::write(&f, "[zoho]\nrefresh_token = \"x\"\n").unwrap();
        let msg = Config::load(Some(&f), None, &env(&[])).unwrap_err().to_string();
        assert!(msg.contains("ZOHO_REFRESH_TOKEN") && !msg.contains("\"x\""), "{msg}");
    }

    #[test]
    fn missing_credentials_name_every_variable() {
        let c = Config::load(None, None, &env(&[("ZOHO_CLIENT_ID", "abc")])).unwrap();
        let msg = c.zoho.credentials().unwrap_err().to_string();
        assert!(
            msg.contains("ZOHO_CLIENT_SECRET")
                && msg.contains("ZOHO_REFRESH_TOKEN")
                && !msg.contains("ZOHO_CLIENT_ID,"),
            "{msg}"
        );
        let msg = c.moodle.credentials().unwrap_err().to_string();
        assert!(msg.contains("MOODLE_URL") && msg.contains("MOODLE_TOKEN"), "{msg}");
    }
}
