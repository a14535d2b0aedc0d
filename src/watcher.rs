//! Live policy reload (DESIGN §7): the policy file is watched and SIGHUP
//! listened for; a change is read, validated, and handed to the planner
//! thread, which puts it in force between ticks.
//!
//! The watch is on the file's directory, not the file: an editor's save
//! (write to a temporary, rename over), `kubectl` updating a mounted
//! ConfigMap (a new timestamped directory, then the `..data` symlink
//! swapped to it) and a plain write all show up there, and a watch on the
//! file itself would be lost with the first rename. Both of those writers
//! take several steps, so events go through `notify-debouncer-full`: the
//! file is read `reload.debounce` after a change, with every change that
//! came meanwhile folded into the same read, and a busy file beside it (a
//! log) does not hold that read back. A file whose content did not change
//! is not reloaded.
//!
//! Every reload logs what it changes against the policy in force (tenants
//! and resources added, removed, changed; see [`PolicyDiff`]). An invalid
//! edit is logged with file, path and reason, counted in
//! `prescient_policy_reloads_total{result="error"}`, and changes nothing:
//! the last good policy stays in force. So does a valid edit that removes
//! more than `reload.max_removed_share` of the tenants or resources
//! (`result="refused"`): a file cut short by an editor or a script still
//! parses. SIGHUP forces it: an operator asked for that file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use crate::admission::Reloaded;
use crate::metrics::Metrics;
use crate::policy::{Policy, PolicyDiff, PolicyError};

/// A validated policy for the planner thread to put in force; the outcome
/// goes back on `done`.
pub struct Reload {
    pub policy: Policy,
    pub origin: String,
    pub done: oneshot::Sender<Result<Reloaded, PolicyError>>,
}

/// How the policy file is watched (settings `reload.*`).
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Watch the file; off, only SIGHUP reloads.
    pub watch: bool,
    /// Time after a change before the file is read (at least
    /// [`MIN_DEBOUNCE`]).
    pub debounce: Duration,
    /// A watched edit removing more than this share of the tenants or
    /// resources is refused; SIGHUP applies it anyway.
    pub max_removed_share: f64,
}

/// Reloads `path` on change and on SIGHUP until `cancel`. `in_force` is
/// the policy the daemon started with and `loaded` its text; `apply` hands
/// a reload to the planner (false: it has stopped).
pub struct PolicyWatcher {
    path: PathBuf,
    origin: String,
    /// The policy in force: what an edit is compared with.
    in_force: Policy,
    /// The last text read, valid or not: the same text is not read twice.
    last: String,
    apply: Box<dyn Fn(Reload) -> bool + Send>,
    metrics: Arc<Metrics>,
}

impl PolicyWatcher {
    pub fn new(
        path: PathBuf,
        in_force: Policy,
        loaded: String,
        apply: impl Fn(Reload) -> bool + Send + 'static,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            origin: path.display().to_string(),
            path,
            in_force,
            last: loaded,
            apply: Box::new(apply),
            metrics,
        }
    }

    /// Starts watching and runs until `cancel`. A watch that cannot start
    /// (inotify instances exhausted, say) is logged, not fatal: admission
    /// goes on, and SIGHUP still reloads.
    pub fn spawn(
        mut self,
        config: WatchConfig,
        cancel: CancellationToken,
    ) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
        let changed = Arc::new(Notify::new());
        let watcher = match config.watch {
            true => watch_directory(&self.path, config.debounce, changed.clone())
                .inspect_err(|e| {
                    tracing::error!(
                        error = format!("{e:#}"),
                        "policy file not watched; only SIGHUP reloads it"
                    )
                })
                .ok(),
            false => None,
        };
        let mut hangup = hangup()?;
        if watcher.is_some() {
            // An edit between the daemon's first read and the watch
            // starting would otherwise wait for the next one: look once now
            // (the same text is not reloaded).
            changed.notify_one();
        }
        Ok(tokio::spawn(async move {
            // Dropped when the task ends, which stops the watch.
            let _watcher = watcher;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    // Already debounced by the watcher.
                    _ = changed.notified() => self.reload(false, config.max_removed_share).await,
                    Some(()) = hangup.recv() => {
                        tracing::info!(file = %self.origin, "SIGHUP: reloading the policy");
                        self.reload(true, config.max_removed_share).await;
                    }
                }
            }
        }))
    }

    /// Reads, validates and applies the file; `forced` (SIGHUP) applies it
    /// even if its text has not changed, and even if it removes more than
    /// `max_removed_share`.
    async fn reload(&mut self, forced: bool, max_removed_share: f64) {
        let text = match tokio::fs::read_to_string(&self.path).await {
            Ok(text) => text,
            Err(e) => {
                let e = PolicyError::single(&self.origin, "", format!("cannot read: {e}"));
                // A file that comes back with the same text is read again.
                self.last.clear();
                return self.refused(&e);
            }
        };
        if !forced && text == self.last {
            return;
        }
        self.last.clone_from(&text);
        let policy = match Policy::load_str(&text, &self.origin) {
            Ok(policy) => policy,
            Err(e) => return self.refused(&e),
        };
        let diff = PolicyDiff::between(&self.in_force, &policy);
        if let Some(reason) = diff.removes_too_much(max_removed_share) {
            if !forced {
                self.metrics.reload_refused("refused");
                tracing::error!(
                    file = %self.origin,
                    changes = %diff,
                    reason = %reason,
                    "policy reload refused; the previous policy stays in force \
                     (SIGHUP applies the file as it is)"
                );
                return;
            }
            tracing::warn!(file = %self.origin, reason = %reason, "SIGHUP: applying it anyway");
        }
        let summary = policy.summary();
        let (done, outcome) = oneshot::channel();
        let sent = (self.apply)(Reload {
            policy: policy.clone(),
            origin: self.origin.clone(),
            done,
        });
        if !sent {
            tracing::warn!(file = %self.origin, "policy reload dropped: the planner has stopped");
            return;
        }
        match outcome.await {
            Ok(Ok(_)) => {
                self.metrics.reloaded(&text, SystemTime::now());
                self.in_force = policy;
                tracing::info!(
                    file = %self.origin,
                    policy = %summary,
                    changes = %diff,
                    "policy reloaded"
                );
            }
            Ok(Err(e)) => self.refused(&e),
            Err(_) => {} // the planner stopped first
        }
    }

    fn refused(&self, e: &PolicyError) {
        self.metrics.reload_refused("error");
        for p in &e.problems {
            tracing::error!(file = %e.origin, path = %p.path, reason = %p.reason, "invalid policy");
        }
        tracing::error!(
            file = %e.origin,
            problems = e.problems.len(),
            "policy reload refused; the previous policy stays in force"
        );
    }
}

/// Without a policy file (the embedded policy) there is nothing to reload:
/// SIGHUP is logged and otherwise ignored (its default would end the
/// process).
pub fn ignore_hangups(
    cancel: CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let mut hangup = hangup()?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                Some(()) = hangup.recv() => tracing::warn!(
                    "SIGHUP: the embedded policy is in use (no `policy` file); nothing to reload"
                ),
            }
        }
    }))
}

/// The shortest `reload.debounce`: the debouncer polls every quarter of
/// it, and a zero would spin a core.
pub const MIN_DEBOUNCE: Duration = Duration::from_millis(10);

/// Watches the directory holding `file`; once a batch of changes there is
/// `debounce` old, wakes `changed` (coalesced: one permit however many
/// batches). Reads are not changes: the watcher's own read of the file
/// would wake it again.
fn watch_directory(
    file: &Path,
    debounce: Duration,
    changed: Arc<Notify>,
) -> anyhow::Result<Debouncer<RecommendedWatcher, RecommendedCache>> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut watcher = notify_debouncer_full::new_debouncer(
        debounce.max(MIN_DEBOUNCE),
        None,
        move |batch: DebounceEventResult| match batch {
            Ok(events) => {
                if events
                    .iter()
                    .any(|e| !matches!(e.kind, EventKind::Access(_)))
                {
                    changed.notify_one();
                }
            }
            Err(errors) => {
                for e in errors {
                    tracing::warn!(error = %e, "policy watch error");
                }
            }
        },
    )
    .context("reload.watch: cannot start the file watcher")?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("reload.watch: cannot watch {}", dir.display()))?;
    Ok(watcher)
}

#[cfg(unix)]
fn hangup() -> anyhow::Result<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    signal(SignalKind::hangup()).context("cannot listen for SIGHUP")
}

/// No SIGHUP off Unix: a stream that never yields.
#[cfg(not(unix))]
fn hangup() -> anyhow::Result<NoSignal> {
    Ok(NoSignal)
}

#[cfg(not(unix))]
struct NoSignal;

#[cfg(not(unix))]
impl NoSignal {
    async fn recv(&mut self) -> Option<()> {
        std::future::pending().await
    }
}
