//! Runs or checks each block of one Markdown file (see `tests/docs.rs`):
//! commands through the binary under test, snippets through the code that
//! reads them. Problems are collected, so one run lists every broken
//! block; skipped commands are printed with their reason.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use super::common::Daemon;
use super::markdown::{self, Block};
use super::process::{link_repo, prescient_in, repo, simulate_once};
use super::snippets;
use prescient::proto::AcquireRequest;

/// Commands no test can run here, by their first words, and why.
const SKIP: &[(&[&str], &str)] = &[
    (
        &["cargo", "test"],
        "the whole test suite, this test included (.ci/run runs it)",
    ),
    (
        &["cargo", "bench"],
        "a benchmark of minutes (docs/performance.md)",
    ),
    (&["docker"], "needs a Docker engine and the network"),
    (
        &["envoy"],
        "no Envoy binary here (scripts/lint-deploy checks its bootstrap offline)",
    ),
    (
        &["curl"],
        "needs the Envoy started by the command before it",
    ),
    (&["kubectl"], "needs a cluster"),
    (
        &["scripts/install-lint-tools"],
        "downloads tools from the network",
    ),
    (
        &["scripts/lint-deploy"],
        "needs the tools install-lint-tools downloads (.ci/run runs it)",
    ),
    (
        &["/usr/bin/time"],
        "a measurement on a release build and a generated 1M-row trace",
    ),
];

/// The client crate's example, as the README runs it.
const CLIENT_EXAMPLE: &[&str] = &[
    "cargo",
    "run",
    "-p",
    "prescient-client",
    "--example",
    "permit",
];

/// One Markdown file's check.
pub struct Docs {
    scratch: tempfile::TempDir,
    problems: Vec<String>,
}

impl Docs {
    /// Checks every block of `file` (relative to the repository); panics
    /// listing every problem.
    pub fn check(file: &str) {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        let mut docs = Docs {
            scratch: tempfile::tempdir().unwrap(),
            problems: Vec::new(),
        };
        link_repo(docs.scratch.path());
        for block in markdown::blocks(file, &text) {
            eprintln!("{}: `{} {}`", block.at(), block.lang, block.attrs.join(" "));
            if let Err(e) = docs.block(&block) {
                docs.problems.push(format!("{}: {e}", block.at()));
            }
            if let Some(name) = block.attr("file") {
                std::fs::write(docs.scratch.path().join(name), &block.text).unwrap();
            }
        }
        assert!(docs.problems.is_empty(), "\n{}", docs.problems.join("\n"));
    }

    fn block(&mut self, block: &Block) -> Result<(), String> {
        let kind = block.attrs.first().map(String::as_str).unwrap_or("");
        match (block.lang.as_str(), kind) {
            ("sh", _) => {
                for cmd in markdown::commands(block)? {
                    if let Err(e) = self.command(&cmd) {
                        let line = cmd.line;
                        self.problems.push(format!("{}:{line}: {e}", block.file));
                    }
                }
                Ok(())
            }
            ("yaml", "policy") => self.policy(block, true),
            ("yaml", "policy-invalid") => self.policy(block, false),
            ("yaml", "settings") => {
                let path = self.write(block);
                let none = Vec::<(std::ffi::OsString, std::ffi::OsString)>::new();
                let overrides = prescient::settings::Overrides::default();
                prescient::settings::Settings::load_from(Some(&path), &overrides, none)
                    .map(drop)
                    .map_err(|e| format!("settings: {e}"))
            }
            ("yaml", "tokens") => {
                let path = self.write(block);
                prescient::auth::Auth::load(&path, |var| Some(format!("{var}-from-the-docs-test")))
                    .map(drop)
            }
            ("yaml", k) if k.starts_with("excerpt=") => snippets::excerpt(block),
            ("json", "sim-json") => snippets::contract(block),
            ("text", "synopsis") => snippets::synopsis(block),
            ("text", "layout") => snippets::layout(block),
            ("text", "log") => snippets::log_line(block),
            ("text", "") => Ok(()),
            // The README's Rust blocks are doctests of prescient-client
            // (client/src/lib.rs includes the README), which `cargo test`
            // compiles.
            ("rust", _) if block.file == "README.md" => Ok(()),
            (lang, kind) => Err(format!("no check for a `{lang} {kind}` block")),
        }
    }

    fn write(&self, block: &Block) -> PathBuf {
        let path = self
            .scratch
            .path()
            .join(format!("block-{}.yaml", block.line));
        std::fs::write(&path, &block.text).unwrap();
        path
    }

    fn policy(&self, block: &Block, valid: bool) -> Result<(), String> {
        let path = self.write(block);
        let out = prescient_in(self.scratch.path(), &["check", path.to_str().unwrap()]);
        match (out.status.code(), valid) {
            (Some(0), true) | (Some(1), false) => Ok(()),
            _ => Err(format!(
                "`prescient check` exited {:?} on a {} policy: {}{}",
                out.status.code(),
                if valid { "valid" } else { "invalid" },
                out.stdout,
                out.stderr
            )),
        }
    }

    fn command(&self, cmd: &markdown::Command) -> Result<(), String> {
        let w: Vec<&str> = cmd.words.iter().map(String::as_str).collect();
        if let Some((_, why)) = SKIP.iter().find(|(head, _)| w.starts_with(head)) {
            eprintln!("SKIP `{}`: {why}", cmd.text());
            return Ok(());
        }
        eprintln!("RUN `{}`", cmd.text());
        let args = match w.as_slice() {
            ["cargo", "run", "--release", "--example", "acquire"]
            | ["cargo", "run", "--example", "acquire"] => return example(&cmd.expected),
            w if w == CLIENT_EXAMPLE => return client_example(&cmd.expected),
            ["grpcurl", ..] => return grpcurl(&w),
            ["prescient", args @ ..]
            | ["cargo", "run", "--release", "--", args @ ..]
            | ["cargo", "run", "--", args @ ..] => args,
            _ => return Err(format!("no way to run `{}`", cmd.text())),
        };
        if args.first() == Some(&"serve") {
            return serve(args);
        }
        let out = if args.first() == Some(&"simulate") {
            simulate_once(&cmd.words[cmd.words.len() - args.len()..])
        } else {
            Arc::new(prescient_in(self.scratch.path(), args))
        };
        if cmd.expected.is_empty() {
            if !out.status.success() {
                return Err(format!("`{}` failed: {}", cmd.text(), out.stderr));
            }
            return Ok(());
        }
        markdown::same_shape(&cmd.expected, &format!("{}{}", out.stdout, out.stderr))
    }
}

/// `serve` as written, on free ports instead of the fixed ones (other
/// tests run beside this one): it must start and stop cleanly. With no
/// other flags, the README promises the default addresses.
fn serve(args: &[&str]) -> Result<(), String> {
    if args == ["serve"] {
        let s = prescient::settings::Settings::load_from(
            None,
            &Default::default(),
            Vec::<(std::ffi::OsString, std::ffi::OsString)>::new(),
        )
        .map_err(|e| e.to_string())?;
        assert_eq!(s.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(s.admin_listen.to_string(), "127.0.0.1:9090");
    }
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_prescient"));
    cmd.args(args)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut daemon = Daemon::start_command(cmd);
    let status = daemon.terminate();
    status
        .success()
        .then_some(())
        .ok_or(format!("serve exited {status} on SIGTERM"))
}

/// `cargo run --example acquire`: the example's code against a daemon on
/// the embedded defaults, its output compared with the text's.
fn example(expected: &[String]) -> Result<(), String> {
    let daemon = Daemon::start_embedded();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt
        .block_on(super::acquire_example::run(&daemon.grpc.to_string()))
        .map_err(|e| e.to_string())?;
    if out.lines().count() != expected.len() {
        return Err(format!("expected {expected:?}, got:\n{out}"));
    }
    markdown::same_shape(expected, &out)
}

/// `cargo run -p prescient-client --example permit`: the client crate's
/// example against a daemon on the embedded defaults, like [`example`].
fn client_example(expected: &[String]) -> Result<(), String> {
    let daemon = Daemon::start_embedded();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let out = rt
        .block_on(super::permit_example::run(&daemon.grpc.to_string()))
        .map_err(|e| e.to_string())?;
    if out.lines().count() != expected.len() {
        return Err(format!("expected {expected:?}, got:\n{out}"));
    }
    markdown::same_shape(expected, &out)
}

/// grpcurl against a daemon on the embedded defaults. Without grpcurl, its
/// method and JSON fields are checked against the service descriptor and
/// the call is made with tonic.
fn grpcurl(words: &[&str]) -> Result<(), String> {
    let daemon = Daemon::start_embedded();
    let addr = daemon.grpc.to_string();
    let words: Vec<String> = words
        .iter()
        .map(|w| w.replace("127.0.0.1:50051", &addr))
        .collect();
    if let Ok(out) = Command::new("grpcurl").args(&words[1..]).output() {
        return out.status.success().then_some(()).ok_or(format!(
            "grpcurl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    eprintln!("SKIP grpcurl itself: not installed; its request is sent with tonic instead");
    let data = words.iter().position(|w| w == "-d").map(|i| &words[i + 1]);
    let json: serde_json::Value =
        serde_json::from_str(data.ok_or("no -d")?).map_err(|e| format!("-d is not JSON: {e}"))?;
    let method = words.last().unwrap();
    if method != "prescient.v1.Admission/Acquire" {
        return Err(format!("no emulation of {method}: install grpcurl"));
    }
    let fields = message_fields("AcquireRequest");
    let text = |k: &str| json[k].as_str().unwrap_or_default().to_owned();
    let mut req = AcquireRequest {
        tenant: text("tenant"),
        resource: text("resource"),
        ..Default::default()
    };
    for (key, value) in json.as_object().ok_or("-d is not an object")? {
        if !fields.contains(key) {
            return Err(format!("AcquireRequest has no field {key:?}"));
        }
        match key.as_str() {
            "tenant" | "resource" => {}
            // proto3 JSON: 64-bit integers as strings (or numbers).
            "amount" => {
                req.amount = value
                    .as_str()
                    .map_or(value.as_u64(), |s| s.parse().ok())
                    .ok_or("amount: not a uint64")?
            }
            other => return Err(format!("no emulation of field {other}: install grpcurl")),
        }
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async { daemon.client().await.acquire(req).await })
        .map(drop)
        .map_err(|s| format!("Acquire failed: {s}"))
}

/// Field names (and their JSON names) of a `prescient.v1` message.
fn message_fields(message: &str) -> Vec<String> {
    use prost::Message as _;
    let set =
        prost_types::FileDescriptorSet::decode(prescient::proto::FILE_DESCRIPTOR_SET).unwrap();
    set.file
        .iter()
        .flat_map(|f| &f.message_type)
        .filter(|m| m.name() == message)
        .flat_map(|m| &m.field)
        .flat_map(|f| [f.name().to_owned(), f.json_name().to_owned()])
        .collect()
}
