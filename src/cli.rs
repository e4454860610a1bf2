//! The command line (clap). A subcommand appears here only once it works.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "zmsync",
    version,
    about = "Keeps Zoho CRM and Moodle in agreement.",
    long_about = "Keeps Zoho CRM and Moodle in agreement: snapshots both systems, fingerprints every record \
                  (MD5, change detection only), computes diffs, writes CSV reports and applies the changes \
                  through both APIs.\n\nConfiguration comes from the environment, a .env file in the working \
                  directory and an optional TOML file (--config). Secrets (ZOHO_CLIENT_SECRET, \
                  ZOHO_REFRESH_TOKEN, MOODLE_TOKEN, *_WEBHOOK_HMAC_SECRET, ZOHO_NOTIFY_TOKEN) are read only from \
                  the environment or .env.",
    after_help = "Exit codes: 0 done, 1 failed, 2 usage or configuration error, 3 finished but some records \
                  failed, 4 refused by a safety guard, 5 another run holds the lock (nothing done).\n\nStart with `zmsync init`, then \
                  `zmsync settings list`."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// More log output from zmsync (-v info, -vv debug, -vvv trace; libraries stay at warn). RUST_LOG
    /// overrides, and may reveal what libraries log (docs/configuration.md "Logging").
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Quiet, for cron: a run that succeeds prints nothing; errors, and the summary of a run that exits 3, still
    /// print. Logs: errors only.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// TOML config file (database_url, [zoho] region/client_id/accounts_url/api_domain, [moodle] url).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Store location: sqlite://PATH or postgres://USER:PASS@HOST/DB [default: $DATABASE_URL or sqlite://zmsync.db]
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or migrate the store and write the default settings where absent.
    Init,
    /// Check that this installation is ready: configuration, secrets present, store, Zoho token, modules and
    /// mapped fields, Moodle site, web-service functions, plugin contract, clock skew, disk space.
    #[command(after_help = "One line per check: PASS, WARN, FAIL or SKIP, and for a failure what to do. Exit 0 when \
                            nothing failed (warnings allowed), 1 otherwise. Secrets are only ever shown as `set \
                            (hidden)`. The Zoho check mints a new access token (one of the 10 Zoho allows per 10 \
                            minutes) and caches it in the store like any run.")]
    Doctor,
    /// Show or change runtime settings (app_settings).
    #[command(subcommand)]
    Settings(SettingsCommand),
    /// Inspect the store.
    #[command(subcommand)]
    Db(DbCommand),
    /// Fetch the enabled modules from Zoho and Moodle into the store (records, fingerprints).
    #[command(after_help = "A full snapshot that finds no records where the store holds some is refused (exit 4) \
                            and writes nothing: check the token's permissions, the module names in mapping.fields \
                            and Moodle restrictions.")]
    Snapshot {
        /// Only this module: a Zoho module (BTEC_Students) or an entity name (student).
        #[arg(long, value_name = "MODULE")]
        module: Option<String>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Install, e.g.:\n  zmsync completions bash > /etc/bash_completion.d/zmsync\n  zmsync completions zsh > \"${fpath[1]}/_zmsync\"\n  zmsync completions fish > ~/.config/fish/completions/zmsync.fish"
    )]
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), e.g. `zmsync man > /usr/local/share/man/man1/zmsync.1`.
    Man,
    /// Work out what a sync would change and save it as a plan (JSON), or show a saved plan.
    Plan(PlanArgs),
    /// What differs between Zoho and Moodle, one row per record and field (CSV, JSON or a table).
    Diff(DiffArgs),
    /// Serve a fake Zoho CRM and a fake Moodle on 127.0.0.1, filled with a generated college, until Ctrl-C.
    #[command(
        long_about = "Serve a fake Zoho CRM and a fake Moodle on 127.0.0.1, filled with a generated BTEC college, \
                      until SIGINT or SIGTERM.\n\nPrints exactly seven KEY=VALUE lines on stdout (ZOHO_ACCOUNTS_URL, \
                      ZOHO_API_DOMAIN, ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET, ZOHO_REFRESH_TOKEN, MOODLE_URL, MOODLE_TOKEN) \
                      and a summary on stderr. Credentials are random per start.",
        after_help = "Examples:\n  zmsync sandbox --state synced > sandbox.env &\n  eval \"$(zmsync sandbox --state drifted --seed 7 | head -7)\""
    )]
    Sandbox(SandboxArgs),
    /// Sync: snapshot both sides, plan, apply, report. One of --all, --module M or --incremental.
    #[command(after_help = "Exit codes: 0 done; 1 failed; 3 finished but some records were rejected or failed \
                            (see the CSV report and `zmsync db`), or the report could not be written (the message \
                            says how to write it later: `zmsync report RUN`); 4 refused by a safety guard (nothing \
                            written: look before re-running with --allow-mass-change); 5 another live run holds the \
                            lock (nothing done; `--if-free` makes that exit 0). With -q a run that exits 0 prints \
                            nothing. Reports go to reports/run-<id>.csv beside the store (--report-dir). See \
                            docs/sync.md.")]
    Sync(SyncArgs),
    /// Apply a saved plan (`zmsync plan --out plan.json`): ops whose records changed since are skipped and listed.
    Apply(ApplyArgs),
    /// Start the sandbox in-process, sync 1,500 students into its empty Moodle, run again (no change), and
    /// print where the reports are.
    Demo(DemoArgs),
    /// Run the webhook receiver: verify signed events, record them, mark records dirty, answer at once.
    #[command(after_help = "Routes, payloads and set-up: docs/webhooks.md. The first line on stdout is the bound \
                            address (useful with --bind 127.0.0.1:0). SIGTERM or SIGINT drains and stops.")]
    Serve(ServeArgs),
    /// The webhook event queue: status, retry failed events, clean up old ones.
    #[command(subcommand)]
    Events(EventsCommand),
    /// What happened lately: one line per run, or one run's story (`runs show RUN`).
    #[command(after_help = "Status: completed; partial (completed, some records rejected or failed: exit 3); \
                            failed; refused (a guard or the lock); interrupted (killed before it finished: the next \
                            run finishes its work); running.\n\nExamples:\n  zmsync runs --limit 10\n  zmsync \
                            runs show 42\n  zmsync runs show 42 --issues student.duplicate\n  zmsync --json runs")]
    Runs(RunsArgs),
    /// Everything zmsync did to one record and its dependants (enrolments, grades, payments…), newest first.
    #[command(after_help = "RECORD is a Zoho record id, a Moodle user id, an email or a student (or teacher) id \
                            number. One line per field changed: run, time, action, field, old → new, outcome and the \
                            API's message. Read from the journal; nothing is fetched.\n\nExamples:\n  zmsync \
                            history ana.lopez@college.example\n  zmsync history STU00042 --entity enrollment\n  \
                            zmsync --json history 4876000000123456")]
    History(HistoryArgs),
    /// Re-write a run's CSV report from the journal, or draw it as one HTML page (--html FILE).
    #[command(after_help = "Without RUN: the newest run. The CSV goes where the run's own report went \
                            (reports/run-<id>.csv) unless --out. The HTML page is self-contained (no script, font or \
                            network): summary, changes per entity, failures and issues by cause, trends over the last \
                            runs. Every run also writes reports/run-<id>.html itself.\n\nExamples:\n  zmsync \
                            report 42\n  zmsync report --html last-night.html")]
    Report(ReportArgs),
    /// Plan the undoing of what run RUN applied: show it, save it (--out), apply it with `zmsync apply`.
    #[command(after_help = "Updates go back to their before-values on the side that was written; creates are \
                            undone by the deletion policies (users suspended, courses hidden, enrolments removed, \
                            dashboard rows deleted, Moodle ids cleared in Zoho); suspensions are restored. Ops whose \
                            record changed since RUN are stale: skipped and listed. Never undone: records created \
                            in Zoho and users deleted in Moodle (listed). The snapshot is taken first (--cached to \
                            use the stored one). The guards apply: a revert that removes or suspends more than \
                            guards.max_removals is refused (exit 4) without --allow-mass-change. Applying it is a \
                            run like any other, so it can be reverted too.\n\nExample:\n  zmsync revert 42 --out \
                            undo-42.json && zmsync plan show undo-42.json && zmsync apply undo-42.json")]
    Revert(RevertArgs),
    /// Zoho's Notification API: zmsync's own change-event channel (subscribe, renew, check, remove).
    #[command(subcommand)]
    Zoho(ZohoCommand),
}

#[derive(Debug, Subcommand)]
pub enum ZohoCommand {
    /// Subscribe (or amend) one Notification API channel for every enabled module's create, edit and delete
    /// events, posting to the receiver's /v1/events/zoho/notify; or renew, show or remove it.
    #[command(
        long_about = "Subscribe (or amend) zmsync's Notification API channel: one channel for every enabled module's \
                      create, edit and delete events, notify_url = the receiver's /v1/events/zoho/notify (from --url \
                      or the setting zoho.notify_url), token = ZOHO_NOTIFY_TOKEN, expiry at Zoho's maximum (a week). \
                      The channel id and expiry are remembered in the store: rerunning amends the same channel, \
                      never a second one.",
        after_help = "Examples:\n  zmsync zoho watch --url https://sync.example.edu --dry-run\n  zmsync zoho watch --url \
                      https://sync.example.edu\n  zmsync -q zoho watch --renew      # daily, from the timer or cron\n  \
                      zmsync zoho watch --status\n\nExit codes: 0 done; 1 Zoho refused or could not be reached, the \
                      channel had lapsed (--renew subscribes it again and still exits 1: events were missed), Zoho \
                      granted a much shorter expiry (a clock problem), or --status found a difference; 2 \
                      configuration (ZOHO_NOTIFY_TOKEN, the URL). The token Zoho echoes proves only that the sender \
                      knows it: see docs/zoho-setup.md."
    )]
    Watch(WatchArgs),
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("action").args(["renew", "status", "remove"])))]
pub struct WatchArgs {
    /// The receiver's public base URL (https://sync.example.edu; /v1/events/zoho/notify is added) or the full
    /// notify URL; remembered in the setting zoho.notify_url [default: that setting, else the stored channel's].
    #[arg(long, value_name = "URL", conflicts_with_all = ["status", "remove"])]
    pub url: Option<String>,
    /// Say what would be sent to Zoho; change nothing.
    #[arg(long, conflicts_with = "status")]
    pub dry_run: bool,
    /// Renew the stored channel when less than 2 days remain (else do nothing); a lapsed channel is subscribed
    /// again and exits 1.
    #[arg(long)]
    pub renew: bool,
    /// The channel as Zoho reports it (events, URL, expiry) beside what the store expects; exit 1 on a difference.
    #[arg(long)]
    pub status: bool,
    /// Unsubscribe the channel and forget it.
    #[arg(long)]
    pub remove: bool,
}

/// Which data a reconcile reads.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Only this module: an entity (student, teacher, class, enrollment, grade, payment, registration, unit)
    /// or a Zoho module name (BTEC_Students…). Default: every enabled module.
    #[arg(long, value_name = "MODULE")]
    pub module: Option<String>,
    /// Use the snapshot already in the store instead of taking a fresh one first (of --module only, when
    /// given; the snapshot's summary goes to stderr).
    #[arg(long)]
    pub cached: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PlanArgs {
    #[command(subcommand)]
    pub command: Option<PlanCommand>,
    #[command(flatten)]
    pub reconcile: ReconcileArgs,
    /// Write the plan here (JSON). Without it, only the summary is printed.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Accept a plan that removes or suspends more than guards.max_removals (recorded on the plan). Never
    /// overrides the empty-side guard.
    #[arg(long)]
    pub allow_mass_change: bool,
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// A saved plan: summary and the table of its ops.
    Show {
        file: PathBuf,
        /// Rows of the ops table to print.
        #[arg(long, default_value_t = 200)]
        limit: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    Csv,
    Json,
    Table,
}

#[derive(Debug, Args)]
#[command(after_help = "CSV columns: run_id, entity, key, zoho_id, moodle_id, field, zoho_value, moodle_value, \
                  base_value, action, reason. The per-entity summary goes to stderr for CSV, into the document \
                  for JSON and below the table for a table. Files written with --out start with a UTF-8 BOM so \
                  that Excel reads accents correctly (--no-bom to leave it off).")]
pub struct DiffArgs {
    #[command(flatten)]
    pub reconcile: ReconcileArgs,
    /// Write the report here instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Default: a table on a terminal, CSV otherwise (and always CSV with --out).
    #[arg(long, value_enum)]
    pub format: Option<DiffFormat>,
    /// No UTF-8 byte-order mark at the start of a CSV file.
    #[arg(long)]
    pub no_bom: bool,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// Students in the generated college (teachers and classes grow with it beyond 1,500).
    #[arg(long, default_value_t = 1500, value_name = "N")]
    pub students: usize,
    /// Seed of the generator: the same seed gives the same college.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub seed: u64,
    /// empty: a fresh Moodle; synced: as a completed sync leaves it; drifted: synced plus --drift differences.
    #[arg(long, value_enum, default_value_t = crate::sandbox::generator::State::Empty)]
    pub state: crate::sandbox::generator::State,
    /// How many differences `--state drifted` seeds (every kind at least once from 11).
    #[arg(long, default_value_t = 30, value_name = "K")]
    pub drift: usize,
    /// Added to every call on both fakes.
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub latency_ms: u64,
    /// Added per record written on both fakes (a real Moodle spends about 12 ms per created user).
    #[arg(long, default_value_t = 0, value_name = "MS")]
    pub per_record_ms: u64,
    /// Probability (0 to 1) that a call fails with a transport fault.
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub fault_rate: f64,
    /// Port of the fake Zoho (0 = any free port).
    #[arg(long, default_value_t = 0, value_name = "PORT")]
    pub zoho_port: u16,
    /// Port of the fake Moodle (0 = any free port).
    #[arg(long, default_value_t = 0, value_name = "PORT")]
    pub moodle_port: u16,
    /// Base URL of a webhook receiver (e.g. http://127.0.0.1:8080): Zoho workflow rules and the Moodle plugin
    /// post their events under it.
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
    /// The fake Moodle spends a real Moodle 5.0's server time per call on 4 PHP workers (about 34 ms per
    /// created user, 35 ms per enrolment, 150 ms per course): a first sync then takes as long as on a real site.
    #[arg(long)]
    pub moodle_cost_model: bool,
    /// The fake Moodle's Show user identity includes phone1 (a stock site shows only email, so phones are
    /// unreadable to the token).
    #[arg(long)]
    pub moodle_show_phone: bool,
    /// The fake Moodle has working outgoing mail (a stock site has none, so each manual enrolment that sends a
    /// welcome message ends in "Message was not sent." after it was saved).
    #[arg(long)]
    pub moodle_mail: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:8001", value_name = "HOST:PORT")]
    pub bind: String,
    /// Store slots: requests verified, committed and waited for at once (each on a thread of its own; a
    /// request takes one only once its whole body is in, so slow clients never hold one). Accepted events/s
    /// is at most workers / commit latency: on PostgreSQL (a commit of several ms) use more.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,
    /// Refuse (422) an event whose own timestamp (`timestamp`, `server_time`, `timecreated`) is more than
    /// this many hours old, or more than 5 minutes ahead: a captured signed body cannot be replayed later.
    #[arg(long, default_value_t = 24, value_name = "HOURS", value_parser = clap::value_parser!(u32).range(1..=8760))]
    pub replay_window: u32,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Counts by source and status, the oldest pending event, the last failures.
    Status {
        /// How many recent failures to show.
        #[arg(long, default_value_t = 10)]
        failures: usize,
    },
    /// Put failed events of the last N hours back to pending (within retry.policy.max_retries).
    Retry {
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..))]
        hours: u32,
    },
    /// Delete completed events older than N days.
    Cleanup {
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..))]
        days: u32,
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Delete failed events too (they are kept by default, for `events retry`).
        #[arg(long)]
        include_failed: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Every setting with its current value (defaults shown for absent rows).
    List,
    /// One setting's value, with its expected shape.
    Get {
        /// e.g. retry.policy
        key: String,
    },
    /// Change a setting. The value is JSON and must fit the key's shape.
    #[command(
        after_help = "Example:\n  zmsync settings set retry.policy '{\"max_retries\":5,\"backoff_factor\":2,\"initial_delay_seconds\":30}'"
    )]
    Set {
        key: String,
        /// The new value as JSON (quote it for the shell).
        #[arg(value_name = "JSON")]
        value: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Schema version, dialect and location (never a password).
    Status,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["all", "module", "incremental"])))]
pub struct SyncArgs {
    /// Every enabled module.
    #[arg(long)]
    pub all: bool,
    /// One module: an entity (student, class, enrollment…) or a Zoho module name (BTEC_Students…).
    #[arg(long, value_name = "MODULE")]
    pub module: Option<String>,
    /// Only the records marked dirty by webhooks, plus Zoho changes since the last run.
    #[arg(long)]
    pub incremental: bool,
    /// With --incremental: keep running, syncing as dirty marks arrive, until SIGTERM or SIGINT.
    #[arg(long, requires = "incremental")]
    pub follow: bool,
    /// When another live run holds the lock, log it and exit 0 instead of 5: for schedules that overlap (the
    /// 5-minute incremental run while the nightly full run works).
    #[arg(long, conflicts_with = "lock_wait")]
    pub if_free: bool,
    /// When another live run holds the lock, try again every few seconds for up to SECONDS before exiting 5:
    /// for the nightly full run, so that an incremental run that happens to be going does not cost the night.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub lock_wait: u64,
    #[command(flatten)]
    pub common: RunArgs,
    /// Write the plan this run applies (JSON) here.
    #[arg(long, value_name = "FILE")]
    pub plan_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Do everything but write: print what would be done (the CSV lists it too).
    #[arg(long)]
    pub dry_run: bool,
    /// Let a plan over the mass-change limit through (recorded on the run).
    #[arg(long)]
    pub allow_mass_change: bool,
    /// Where the CSV report goes [default: reports/ beside the store].
    #[arg(long, value_name = "DIR")]
    pub report_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The plan file written by `zmsync plan --out` or `zmsync sync --plan-out`.
    pub plan: PathBuf,
    #[command(flatten)]
    pub common: RunArgs,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory for the store and the reports [default: a new temporary directory, kept].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Students in the generated college.
    #[arg(long, default_value_t = 1500, value_name = "N")]
    pub students: usize,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub command: Option<RunsCommand>,
    /// How many runs to list, newest first.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..))]
    pub limit: i64,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// One run: summary, failures with their messages, guards, issues by cause, where its reports are.
    Show {
        /// The run id (`zmsync runs` lists them).
        run: i64,
        /// List the records of one issue cause (e.g. student.duplicate) instead.
        #[arg(long, value_name = "CAUSE")]
        issues: Option<String>,
        /// Failures listed in text (--json lists all).
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// A Zoho record id, a Moodle user id, an email, or a student or teacher id number.
    #[arg(value_name = "RECORD")]
    pub record: String,
    /// Only ops of this entity (student, teacher, class, teaching, enrollment, registration, payment, grade, unit).
    #[arg(long, value_name = "E")]
    pub entity: Option<String>,
    /// At most this many ops, newest first.
    #[arg(long, default_value_t = 500)]
    pub limit: i64,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run [default: the newest].
    pub run: Option<i64>,
    /// Write the CSV here instead of where the run's report goes.
    #[arg(long, value_name = "FILE", conflicts_with = "html")]
    pub out: Option<PathBuf>,
    /// Write the run as one self-contained HTML page here (instead of the CSV).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Runs the trend charts of the HTML page cover.
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub trend_runs: i64,
}

#[derive(Debug, Args)]
pub struct RevertArgs {
    /// The run to undo (`zmsync runs` lists them).
    pub run: i64,
    /// Save the plan here (JSON) for `zmsync plan show` and `zmsync apply`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Let a revert over the mass-change limit through (recorded on the plan).
    #[arg(long)]
    pub allow_mass_change: bool,
    /// Use the snapshot already in the store instead of taking a fresh one first.
    #[arg(long)]
    pub cached: bool,
}
