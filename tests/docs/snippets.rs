//! Checks of the blocks that are not commands: a YAML excerpt, the
//! simulate JSON contract, a command-line synopsis, a layout listing and a
//! debug log line (see README "Docs are tested").

use std::time::Duration;

use super::common::{Daemon, eventually};
use super::markdown::{self, Block};
use super::process::{prescient_in, repo, simulate_json};
use prescient::proto::AcquireRequest;

/// A YAML excerpt of a repository file: some document there holds it.
pub fn excerpt(block: &Block) -> Result<(), String> {
    use serde::Deserialize as _;
    let path = block.attr("excerpt").unwrap();
    let part: serde_json::Value =
        serde_norway::from_str(&block.text).map_err(|e| format!("not YAML: {e}"))?;
    let text = std::fs::read_to_string(repo().join(path)).map_err(|e| format!("{path}: {e}"))?;
    let found = serde_norway::Deserializer::from_str(&text)
        .filter_map(|doc| serde_json::Value::deserialize(doc).ok())
        .any(|doc| within(&part, &doc));
    found
        .then_some(())
        .ok_or(format!("no document of {path} holds this excerpt"))
}

/// Whether `part` is `whole` with keys or list items left out.
fn within(part: &serde_json::Value, whole: &serde_json::Value) -> bool {
    use serde_json::Value::{Array, Object};
    match (part, whole) {
        (Object(p), Object(w)) => p
            .iter()
            .all(|(k, v)| w.get(k).is_some_and(|wv| within(v, wv))),
        (Array(p), Array(w)) => p.iter().all(|v| w.iter().any(|wv| within(v, wv))),
        _ => part == whole,
    }
}

/// The simulate JSON contract: each key shown is in a real run's output,
/// with a value of the same type; `"..."` stands for what is not spelled
/// out.
pub fn contract(block: &Block) -> Result<(), String> {
    let doc: serde_json::Value =
        serde_json::from_str(&block.text).map_err(|e| format!("not JSON: {e}"))?;
    fn walk(doc: &serde_json::Value, run: &serde_json::Value, path: &str) -> Result<(), String> {
        use serde_json::Value::{Number, Object};
        match (doc, run) {
            (Object(d), Object(r)) => {
                for (k, v) in d.iter().filter(|(k, _)| *k != "...") {
                    let sub = format!("{path}.{k}");
                    walk(
                        v,
                        r.get(k).ok_or(format!("{sub}: not in the output"))?,
                        &sub,
                    )?;
                }
                Ok(())
            }
            (Number(_), Number(_)) => Ok(()),
            _ => Err(format!("{path}: {doc} in the docs, {run} in the output")),
        }
    }
    walk(&doc, &simulate_json(), "")
}

/// A command-line synopsis: its flags are exactly those of `--help`.
pub fn synopsis(block: &Block) -> Result<(), String> {
    let mut commands: Vec<(String, Vec<String>)> = Vec::new();
    for line in block.text.lines() {
        let mut words = line.split_whitespace();
        if line.starts_with("prescient ") {
            words.next();
            commands.push((words.next().unwrap().to_owned(), Vec::new()));
        }
        let flags = words
            .map(|w| w.trim_matches(|c| c == '[' || c == ']'))
            .filter(|w| w.starts_with("--"));
        let (_, all) = commands.last_mut().ok_or("no `prescient` line")?;
        all.extend(flags.map(str::to_owned));
    }
    for (sub, mut flags) in commands {
        let help = prescient_in(&repo(), &[&sub, "--help"]);
        let mut real: Vec<String> = help
            .stdout
            .split_whitespace()
            .map(|w| w.trim_end_matches(','))
            .filter(|w| w.starts_with("--") && *w != "--help" && *w != "--version")
            .map(str::to_owned)
            .collect();
        real.sort();
        real.dedup();
        flags.sort();
        if flags != real {
            return Err(format!(
                "`prescient {sub}`: docs {flags:?}, --help {real:?}"
            ));
        }
    }
    Ok(())
}

/// A layout listing: the first word of each line is a path that exists.
pub fn layout(block: &Block) -> Result<(), String> {
    let missing: Vec<&str> = block
        .text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|p| !repo().join(p).exists())
        .collect();
    missing
        .is_empty()
        .then_some(())
        .ok_or(format!("no such paths: {missing:?}"))
}

/// A log line at debug: the daemon logs one of that shape for the Acquire
/// its span names (with `RUST_LOG` as operations.md says).
pub fn log_line(block: &Block) -> Result<(), String> {
    let line = block.text.trim();
    let field = |name: &str| -> Result<String, String> {
        let start = line
            .find(&format!("{name}="))
            .ok_or(format!("no {name}="))?
            + name.len()
            + 1;
        let value = line[start..].split([' ', '}']).next();
        Ok(value.unwrap_or_default().to_owned())
    };
    let req = AcquireRequest {
        tenant: field("tenant")?,
        resource: field("resource")?,
        amount: field("amount")?.parse().map_err(|_| "amount=")?,
        ..Default::default()
    };
    let env = [("RUST_LOG", "info,prescient::grpc=debug")];
    let daemon = Daemon::start(prescient::policy::EMBEDDED_POLICY, &env);
    let want = markdown::shape(line);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        daemon.client().await.acquire(req).await.unwrap();
        eventually(Duration::from_secs(10), "the debug line", || async {
            let log = daemon.log.lock().unwrap();
            log.iter()
                .any(|l| markdown::shape(l).ends_with(&want))
                .then_some(())
        })
        .await;
    });
    Ok(())
}
