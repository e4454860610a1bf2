//! `zmsync zoho watch [--url URL] [--dry-run] | --renew | --status | --remove`: zmsync's own Notification API
//! channel — subscribed, amended, renewed, compared and removed by zmsync, remembered in the
//! store (`zoho_channel`). The rules (events, URL, renewal window) are in [`crate::zoho::channel`].

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use serde_json::json;

use super::{print_json, Context};
use crate::bridge;
use crate::cli::{WatchArgs, ZohoCommand};
use crate::error::{Exit, UsageError};
use crate::settings::Settings;
use crate::store::{ChannelRow, Store};
use crate::zoho::channel::{self, ASK_FOR, RENEW_WITHIN};
use crate::zoho::watch::{ChannelRequest, WatchedChannel};
use crate::zoho::{Client, ClientOptions, ZohoError};

/// Zoho accepts a channel token of at most 50 characters.
const MAX_TOKEN_CHARS: usize = 50;

pub fn run(ctx: &Context, cmd: ZohoCommand) -> Result<Exit> {
    match cmd {
        ZohoCommand::Watch(args) => watch(ctx, args),
    }
}

fn watch(ctx: &Context, args: WatchArgs) -> Result<Exit> {
    let store = ctx.store()?;
    let settings = Settings::from_rows(&store.settings_map()?)?;
    let stored = store.zoho_channel()?;
    if args.status {
        return status(ctx, store.as_ref(), &settings, stored);
    }
    if args.remove {
        return remove(ctx, store.as_ref(), &settings, stored, args.dry_run);
    }
    let token = notify_token(ctx)?;
    if args.renew && stored.is_none() {
        return Err(anyhow!(
            "no Zoho channel to renew: none was subscribed from this store\n  hint: run `zmsync zoho watch --url \
             https://<receiver>` once (docs/zoho-setup.md)"
        ));
    }
    let events = channel::desired_events(&settings);
    if events.is_empty() {
        return Err(UsageError("no module is enabled (modules.enabled): there is nothing to watch".into()).into());
    }
    let url = match (&args.url, args.renew) {
        (Some(u), _) => channel::notify_url(u).map_err(|e| UsageError(format!("--url: {e}")))?,
        (None, _) => configured_url(&settings, stored.as_ref()).ok_or_else(|| {
            UsageError(
                "no notify URL: pass --url with the receiver's public address (e.g. --url https://sync.example.edu; \
                 zmsync adds /v1/events/zoho/notify), or set zoho.notify_url"
                    .into(),
            )
        })?,
    };
    if let (true, Some(row)) = (args.renew, stored.clone()) {
        return renew(ctx, store.as_ref(), &settings, row, &events, &url, &token, args.dry_run);
    }
    subscribe(ctx, store.as_ref(), &settings, stored, &events, &url, &token, args.dry_run, args.url.is_some())
}

fn notify_token(ctx: &Context) -> Result<String> {
    let Some(t) = ctx.config.webhook.zoho_notify.as_ref() else {
        return Err(UsageError(
            "ZOHO_NOTIFY_TOKEN is not set: it is the channel's token, which Zoho echoes in every callback and the \
             receiver checks\n  hint: set it (any random string of up to 50 characters, e.g. `openssl rand -hex 24`) \
             in the environment of both `zmsync serve` and this command"
                .into(),
        )
        .into());
    };
    if t.expose().chars().count() > MAX_TOKEN_CHARS {
        return Err(UsageError(format!(
            "ZOHO_NOTIFY_TOKEN is longer than the {MAX_TOKEN_CHARS} characters Zoho accepts\n  hint: use a shorter \
             one (e.g. `openssl rand -hex 24`), in the environment of `zmsync serve` too"
        ))
        .into());
    }
    Ok(t.expose().to_string())
}

/// The notify URL in force: the setting, else the one the stored channel was subscribed with.
fn configured_url(settings: &Settings, stored: Option<&ChannelRow>) -> Option<String> {
    Some(settings.notify_url.clone()).filter(|u| !u.is_empty()).or_else(|| stored.map(|c| c.notify_url.clone()))
}

/// Runs `f` with a Zoho client whose access token is cached in the store, like any run's.
fn with_client<T: Send>(
    ctx: &Context,
    store: &dyn Store,
    settings: &Settings,
    f: impl AsyncFnOnce(&Client) -> Result<T, ZohoError> + Send,
) -> Result<T> {
    let opts = ClientOptions::from_settings(settings);
    let out = bridge::serve(store, |b| async move {
        let client = Client::new(&ctx.config.zoho, opts, Some(bridge::token_cache(&b)))?;
        f(&client).await
    })?;
    Ok(out?)
}

fn ours<'a>(list: &'a [WatchedChannel], stored: Option<&ChannelRow>, url: &str) -> Option<&'a WatchedChannel> {
    match stored {
        Some(row) => list.iter().find(|c| c.channel_id == row.channel_id),
        // The store lost its row (a new database): adopt the channel that already posts to our URL.
        None => list.iter().find(|c| c.notify_url.as_deref() == Some(url)),
    }
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn left(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let h = (t - now).num_hours();
    if h >= 48 {
        format!("{} days", h / 24)
    } else {
        format!("{h} h")
    }
}

/// Subscribes or amends, checks the expiry Zoho granted, remembers the channel. Exit 1 when Zoho granted
/// much less than asked (it silently makes a past or too distant expiry one hour: a clock problem here).
#[allow(clippy::too_many_arguments)]
fn apply(
    ctx: &Context,
    store: &dyn Store,
    settings: &Settings,
    channel_id: &str,
    subscribed_at: DateTime<Utc>,
    live: bool,
    events: &[String],
    url: &str,
    token: &str,
) -> Result<(ChannelRow, bool)> {
    let now = Utc::now();
    let asked = now + ASK_FOR;
    let granted = with_client(ctx, store, settings, async |client| {
        let req = ChannelRequest { channel_id, events, notify_url: url, token, expiry: asked };
        match client.watch_subscribe(&req, live).await {
            // It lapsed between the listing and the amendment: subscribe it again.
            Err(ZohoError::Api { code, .. }) if live && code == "NOT_SUBSCRIBED" => {
                client.watch_subscribe(&req, false).await
            }
            other => other,
        }
    })?;
    let row = ChannelRow {
        channel_id: channel_id.to_string(),
        notify_url: url.to_string(),
        events: events.to_vec(),
        expiry: granted,
        subscribed_at,
        renewed_at: now,
    };
    store.put_zoho_channel(&row)?;
    let short = granted < asked - chrono::Duration::hours(1);
    if short {
        eprintln!(
            "error: Zoho granted channel {channel_id} only until {} although zmsync asked for {}: Zoho silently \
             shortens an expiry it finds in the past or more than a week ahead to one hour\n  hint: check this \
             server's clock (`timedatectl`; `zmsync doctor` shows the skew against Zoho), then run `zmsync zoho \
             watch` again",
            when(granted),
            when(asked)
        );
    }
    Ok((row, short))
}

#[allow(clippy::too_many_arguments)]
fn subscribe(
    ctx: &Context,
    store: &dyn Store,
    settings: &Settings,
    stored: Option<ChannelRow>,
    events: &[String],
    url: &str,
    token: &str,
    dry_run: bool,
    url_given: bool,
) -> Result<Exit> {
    let list = with_client(ctx, store, settings, async |c| c.watch_list().await)?;
    let found = ours(&list, stored.as_ref(), url).cloned();
    let now = Utc::now();
    let channel_id = stored
        .as_ref()
        .map(|r| r.channel_id.clone())
        .or_else(|| found.as_ref().map(|c| c.channel_id.clone()))
        .unwrap_or_else(|| channel::new_channel_id(now));
    let verb = if found.is_some() { "amend" } else { "subscribe" };
    if dry_run {
        let modules = events.len() / 3;
        if ctx.json {
            print_json(&json!({"dry_run": true, "action": verb, "channel_id": channel_id, "events": events,
                               "notify_url": url, "expiry": now + ASK_FOR}));
        } else {
            println!(
                "dry run: would {verb} channel {channel_id}: {} events ({modules} modules: create, edit, delete), \
                 notify {url}, expiry {} (Zoho's maximum, a week)",
                events.len(),
                when(now + ASK_FOR)
            );
            println!("events: {}", events.join(", "));
        }
        return Ok(Exit::Done);
    }
    let subscribed_at = stored.as_ref().map(|r| r.subscribed_at).unwrap_or(now);
    let (row, short) = apply(ctx, store, settings, &channel_id, subscribed_at, found.is_some(), events, url, token)?;
    if url_given && settings.notify_url != url {
        store.put_setting("zoho.notify_url", &json!(url), &super::actor())?;
    }
    // A channel of ours under another id (a store that was replaced) would double every event: remove it.
    let strays: Vec<&WatchedChannel> =
        list.iter().filter(|c| c.channel_id != row.channel_id && c.notify_url.as_deref() == Some(url)).collect();
    for s in &strays {
        let id = s.channel_id.clone();
        with_client(ctx, store, settings, async |c| c.watch_remove(&id).await)?;
    }
    if ctx.json {
        print_json(
            &json!({"action": verb, "channel": row, "removed_duplicates": strays.iter().map(|s| &s.channel_id).collect::<Vec<_>>()}),
        );
    } else if !ctx.quiet || short {
        let done = if found.is_some() { "amended" } else { "subscribed" };
        println!(
            "{done} channel {}: {} events ({} modules), notify {url}, expires {} (in {})",
            row.channel_id,
            row.events.len(),
            row.events.len() / 3,
            when(row.expiry),
            left(row.expiry, Utc::now())
        );
        for s in &strays {
            println!("removed channel {}: it posted to the same URL (a duplicate)", s.channel_id);
        }
        if url_given && settings.notify_url != url {
            println!("zoho.notify_url = {url} (remembered for --renew and doctor)");
        }
        println!("renew it daily with `zmsync zoho watch --renew` (zmsync-zoho-watch.timer, or the crontab)");
    }
    Ok(if short { Exit::Failed } else { Exit::Done })
}

#[allow(clippy::too_many_arguments)]
fn renew(
    ctx: &Context,
    store: &dyn Store,
    settings: &Settings,
    row: ChannelRow,
    events: &[String],
    url: &str,
    token: &str,
    dry_run: bool,
) -> Result<Exit> {
    let list = with_client(ctx, store, settings, async |c| c.watch_list().await)?;
    let now = Utc::now();
    let found = list.iter().find(|c| c.channel_id == row.channel_id);
    let expiry = found.and_then(|c| c.expiry);
    match (found, expiry) {
        (Some(_), Some(t)) if t - now >= RENEW_WITHIN => {
            if ctx.json {
                print_json(&json!({"renewed": false, "channel_id": row.channel_id, "expiry": t}));
            } else if !ctx.quiet {
                println!(
                    "channel {} expires {} (in {}): not renewed yet (renewal happens within {} days of expiry)",
                    row.channel_id,
                    when(t),
                    left(t, now),
                    RENEW_WITHIN.num_days()
                );
            }
            Ok(Exit::Done)
        }
        (Some(_), _) => {
            if dry_run {
                println!(
                    "dry run: would renew channel {} (expires {})",
                    row.channel_id,
                    expiry.map(when).unwrap_or_default()
                );
                return Ok(Exit::Done);
            }
            let (new, short) =
                apply(ctx, store, settings, &row.channel_id, row.subscribed_at, true, events, url, token)?;
            if ctx.json {
                print_json(&json!({"renewed": true, "channel": new}));
            } else if !ctx.quiet {
                println!(
                    "renewed channel {} until {} (in {})",
                    new.channel_id,
                    when(new.expiry),
                    left(new.expiry, Utc::now())
                );
            }
            Ok(if short { Exit::Failed } else { Exit::Done })
        }
        (None, _) => {
            let why = if row.expiry <= now {
                format!("lapsed at {}", when(row.expiry))
            } else {
                "is no longer in Zoho (removed there?)".to_string()
            };
            if dry_run {
                println!("dry run: channel {} {why}: would subscribe it again", row.channel_id);
                return Ok(Exit::Failed);
            }
            let (new, _) = apply(ctx, store, settings, &row.channel_id, row.subscribed_at, false, events, url, token)?;
            // Fixed, but events were lost in between: the operator must hear of it (exit 1).
            eprintln!(
                "error: Zoho channel {} {why}; subscribed it again until {}. Changes made in Zoho meanwhile sent no \
                 events: they reach Moodle with the next full sync (`zmsync sync --all`, nightly)\n  hint: the renewal \
                 must run daily (zmsync-zoho-watch.timer or the crontab); check that it does",
                row.channel_id,
                when(new.expiry)
            );
            Ok(Exit::Failed)
        }
    }
}

fn status(ctx: &Context, store: &dyn Store, settings: &Settings, stored: Option<ChannelRow>) -> Result<Exit> {
    let list = with_client(ctx, store, settings, async |c| c.watch_list().await)?;
    let now = Utc::now();
    let url = configured_url(settings, stored.as_ref());
    let desired = channel::desired_events(settings);
    let zoho = stored.as_ref().and_then(|r| list.iter().find(|c| c.channel_id == r.channel_id));
    let problems = match (&stored, &url) {
        (Some(row), Some(u)) => channel::problems(row, zoho, &desired, u, now),
        _ => Vec::new(),
    };
    let others: Vec<&WatchedChannel> =
        list.iter().filter(|c| stored.as_ref().is_none_or(|r| r.channel_id != c.channel_id)).collect();
    if ctx.json {
        print_json(&json!({"expected": stored, "zoho": zoho, "configured_notify_url": url, "desired_events": desired,
                           "problems": problems, "other_channels": others}));
    } else {
        match &stored {
            None => {
                println!("no channel subscribed from this store (run `zmsync zoho watch --url https://<receiver>`)")
            }
            Some(r) => {
                println!(
                    "channel {} (subscribed {}, last renewed {})",
                    r.channel_id,
                    when(r.subscribed_at),
                    when(r.renewed_at)
                );
                println!("{:<8} {:<24} Zoho reports", "", "zmsync expects");
                let zexp = zoho.and_then(|z| z.expiry).map(when).unwrap_or_else(|| "(no channel)".into());
                println!("{:<8} {:<24} {}", "expiry", when(r.expiry), zexp);
                println!(
                    "{:<8} {:<24} {}",
                    "events",
                    format!("{} events", desired.len()),
                    zoho.map(|z| format!("{} events", z.events.len())).unwrap_or_else(|| "-".into())
                );
                println!("url      expects {}", url.as_deref().unwrap_or("-"));
                println!("         Zoho    {}", zoho.and_then(|z| z.notify_url.as_deref()).unwrap_or("-"));
                if problems.is_empty() {
                    println!("OK: the channel is live, covers every enabled module and posts to the configured URL");
                }
                for p in &problems {
                    println!("PROBLEM {} → {}", p.what, p.fix);
                }
            }
        }
        for o in &others {
            println!(
                "other channel in this Zoho org: {} → {} ({} events, expires {})",
                o.channel_id,
                o.notify_url.as_deref().unwrap_or("-"),
                o.events.len(),
                o.expiry.map(when).unwrap_or_default()
            );
        }
    }
    Ok(if problems.is_empty() { Exit::Done } else { Exit::Failed })
}

fn remove(
    ctx: &Context,
    store: &dyn Store,
    settings: &Settings,
    stored: Option<ChannelRow>,
    dry_run: bool,
) -> Result<Exit> {
    let Some(row) = stored else {
        if !ctx.quiet {
            println!("no channel subscribed from this store: nothing to remove");
        }
        return Ok(Exit::Done);
    };
    if dry_run {
        println!("dry run: would unsubscribe channel {} and forget it", row.channel_id);
        return Ok(Exit::Done);
    }
    let id = row.channel_id.clone();
    let existed = with_client(ctx, store, settings, async |c| c.watch_remove(&id).await)?;
    store.delete_zoho_channel()?;
    if ctx.json {
        print_json(&json!({"removed": row.channel_id, "was_in_zoho": existed}));
    } else if !ctx.quiet {
        let note = if existed { "" } else { " (Zoho no longer had it)" };
        println!("removed channel {}{note}; Zoho sends no more events to {}", row.channel_id, row.notify_url);
    }
    Ok(Exit::Done)
}
