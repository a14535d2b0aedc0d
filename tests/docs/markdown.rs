//! What `tests/docs.rs` reads in a Markdown file: its fenced blocks, the
//! shell commands of an `sh` block with the output the text promises, a
//! table marked for a check, and the "shape" output lines are compared by.

/// One fenced block: the first word of its info string is the language, the
/// words after it say what the test does with it (see README "Docs are
/// tested").
pub struct Block {
    pub file: String,
    /// Line of the opening fence, from 1.
    pub line: usize,
    pub lang: String,
    pub attrs: Vec<String>,
    pub text: String,
}

impl Block {
    /// `file:line`, for messages.
    pub fn at(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// The value of `key=VALUE` in the info string.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find_map(|a| a.strip_prefix(key)?.strip_prefix('='))
    }
}

/// Every fenced block of `text` (fences may be indented, as in lists).
pub fn blocks(file: &str, text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    // (first line, fence indent, language, attributes, text)
    let mut open: Option<(usize, usize, String, Vec<String>, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let mut words = info.split_whitespace().map(str::to_owned);
                    let lang = words.next().unwrap_or_default();
                    let indent = line.len() - trimmed.len();
                    open = Some((i + 1, indent, lang, words.collect(), String::new()));
                }
            }
            Some((start, indent, lang, attrs, body)) => {
                if trimmed.trim_end() == "```" {
                    out.push(Block {
                        file: file.to_owned(),
                        line: *start,
                        lang: std::mem::take(lang),
                        attrs: std::mem::take(attrs),
                        text: std::mem::take(body),
                    });
                    open = None;
                } else {
                    // A block indented in a list loses the fence's indent.
                    let cut = (line.len() - trimmed.len()).min(*indent);
                    body.push_str(&line[cut..]);
                    body.push('\n');
                }
            }
        }
    }
    assert!(open.is_none(), "{file}: a fenced block is never closed");
    out
}

/// A command of an `sh` block: its words, and the `# ` lines that follow
/// it (its promised output).
pub struct Command {
    pub line: usize,
    pub words: Vec<String>,
    pub expected: Vec<String>,
}

impl Command {
    pub fn text(&self) -> String {
        self.words.join(" ")
    }
}

/// The commands of an `sh` block: `\` continues a line, `#` outside quotes
/// starts a comment, and comment lines right after a command are its
/// output.
pub fn commands(block: &Block) -> Result<Vec<Command>, String> {
    let mut out: Vec<Command> = Vec::new();
    let mut pending = String::new();
    let mut first = 0;
    for (i, line) in block.text.lines().enumerate() {
        let line_no = block.line + 1 + i;
        if pending.is_empty() {
            let t = line.trim();
            if t.is_empty() {
                continue;
            }
            if let Some(comment) = t.strip_prefix('#') {
                if let Some(cmd) = out.last_mut() {
                    let c = comment.strip_prefix(' ').unwrap_or(comment);
                    cmd.expected.push(c.to_owned());
                }
                continue;
            }
            first = line_no;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(line);
                let words = words(&pending).map_err(|e| format!("line {first}: {e}"))?;
                pending.clear();
                out.push(Command {
                    line: first,
                    words,
                    expected: Vec::new(),
                });
            }
        }
    }
    if !pending.is_empty() {
        return Err("the block ends inside a continued line".into());
    }
    Ok(out)
}

/// Shell words: single and double quotes, and `#` starting a comment.
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some(ch) => word.push(ch),
                        None => return Err(format!("unclosed {c} quote")),
                    }
                }
            }
            '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// A line's shape: runs of digits and hex letters that hold a digit (counts,
/// ids, rates) become `#`, runs of blanks one space. Two outputs of the same
/// shape differ only in such values.
pub fn shape(line: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if !run.is_empty() {
            let hexish = run.chars().all(|c| c.is_ascii_hexdigit());
            let digit = run.chars().any(|c| c.is_ascii_digit());
            out.push_str(if hexish && digit { "#" } else { run });
            run.clear();
        }
    };
    let mut blank = false;
    for c in line.trim().chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            run.push(c);
            blank = false;
            continue;
        }
        flush(&mut run, &mut out);
        if c.is_whitespace() {
            if !blank {
                out.push(' ');
            }
            blank = true;
        } else {
            out.push(c);
            blank = false;
        }
    }
    flush(&mut run, &mut out);
    out
}

/// Whether every `expected` line has the shape of an `actual` line, in
/// order (other lines may come between). `Err` says which one is missing.
pub fn same_shape(expected: &[String], actual: &str) -> Result<(), String> {
    let mut lines = actual.lines().map(shape);
    for want in expected {
        let want_shape = shape(want);
        if !lines.any(|l| l == want_shape) {
            return Err(format!("no line like {want:?} (in order) in:\n{actual}"));
        }
    }
    Ok(())
}

/// The rows of the first Markdown table after `<!-- docs-test: NAME -->`,
/// header and separator skipped, each row's cells trimmed.
pub fn marked_table(text: &str, name: &str) -> Option<Vec<Vec<String>>> {
    let mark = format!("<!-- docs-test: {name} -->");
    let rest = &text[text.find(&mark)? + mark.len()..];
    let rows = rest
        .lines()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.trim_start().starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect();
    Some(rows)
}

#[test]
fn commands_join_continuations_and_collect_expected_output() {
    let block = Block {
        file: "x.md".into(),
        line: 1,
        lang: "sh".into(),
        attrs: vec![],
        text: "prescient check 'a b.yaml'   # say\n# out 1\n\ncargo run -- \\\n  simulate --json\n"
            .into(),
    };
    let cmds = commands(&block).unwrap();
    assert_eq!(cmds[0].words, ["prescient", "check", "a b.yaml"]);
    assert_eq!(cmds[0].expected, ["out 1"]);
    assert_eq!(cmds[1].words, ["cargo", "run", "--", "simulate", "--json"]);
    assert_eq!(cmds[1].line, 5);
}

#[test]
fn shapes_ignore_counts_and_ids_only() {
    assert_eq!(
        shape("worker_slots x1: Granted, lease a17cbd28a88773ff"),
        shape("worker_slots x1: Granted,  lease 0c04473861d0bd28")
    );
    assert_eq!(shape("5200 left"), shape("63 left"));
    assert_ne!(shape("Granted"), shape("Denied"));
    assert_ne!(shape("db_queries x300"), shape("db_queries x30"));
}
