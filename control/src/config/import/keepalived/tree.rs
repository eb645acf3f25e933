//! keepalived.conf's text read into a tree of statements: tokens
//! (words, quoted strings, braces; comments dropped), then statements and
//! their blocks, without recursion and at most [`MAX_DEPTH`] deep, so that
//! no input can exhaust the stack. What the statements mean is the
//! interpreter's ([`super`]).

/// A keyword line and the block that follows it, if any.
#[derive(Debug, Default)]
pub(super) struct Stmt {
    /// The line of the keyword.
    pub(super) line: usize,
    pub(super) words: Vec<String>,
    pub(super) block: Option<Block>,
}

#[derive(Debug, Default)]
pub(super) struct Block {
    pub(super) stmts: Vec<Stmt>,
    /// Whether its `}` was found.
    pub(super) closed: bool,
    /// A block inside it was nested too deep to be read.
    pub(super) too_deep: bool,
}

/// Why a block whose `}` is missing is listed.
pub(super) const UNCLOSED: &str =
    "its `{` is never closed (a `}` is missing): the rest of the file is inside it";

impl Stmt {
    pub(super) fn keyword(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    pub(super) fn args(&self) -> &[String] {
        self.words.get(1..).unwrap_or_default()
    }

    pub(super) fn stmts(&self) -> &[Stmt] {
        self.block.as_ref().map_or(&[], |b| &b.stmts)
    }
}

/// A token of the text.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Tok {
    Word(String),
    Open,
    Close,
}

/// The tokens of `text` with their lines: words (a double-quoted string
/// is one word, without its quotes), `{` and `}`; comments left out.
pub(super) fn tokens(text: &str) -> Vec<(usize, Tok)> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let mut word = String::new();
        let mut quoted = false;
        let mut in_word = false;
        for c in raw.chars() {
            if quoted {
                if c == '"' {
                    quoted = false;
                } else {
                    word.push(c);
                }
                continue;
            }
            match c {
                '#' | '!' => break,
                '"' => {
                    quoted = true;
                    in_word = true;
                }
                '{' | '}' => {
                    if in_word {
                        out.push((line, Tok::Word(std::mem::take(&mut word))));
                        in_word = false;
                    }
                    out.push((line, if c == '{' { Tok::Open } else { Tok::Close }));
                }
                c if c.is_whitespace() => {
                    if in_word {
                        out.push((line, Tok::Word(std::mem::take(&mut word))));
                        in_word = false;
                    }
                }
                c => {
                    word.push(c);
                    in_word = true;
                }
            }
        }
        if in_word {
            out.push((line, Tok::Word(word)));
        }
    }
    out
}

/// Blocks nested deeper than this are not read (keepalived's go four deep).
pub(super) const MAX_DEPTH: usize = 32;

/// A block being read: its statements so far, the one being read, and
/// the statement that owns it.
#[derive(Default)]
pub(super) struct Frame {
    stmts: Vec<Stmt>,
    current: Option<Stmt>,
    owner: Stmt,
    /// A block inside it was nested too deep to be read.
    too_deep: bool,
}

impl Frame {
    pub(super) fn finish(&mut self) {
        if let Some(s) = self.current.take() {
            self.stmts.push(s);
        }
    }
}

/// The top-level statements of `text`, and the lines whose braces do not
/// balance. A statement is the words of one line; a `{` (on that line or
/// the next) opens its block, which its `}` closes. A `{` that follows no
/// keyword opens nothing (its `}` is then one too many).
pub(super) fn tree(text: &str) -> (Vec<Stmt>, Vec<(usize, String)>) {
    let mut problems = Vec::new();
    let mut stack = vec![Frame::default()];
    // `{` beyond MAX_DEPTH, counted but not read.
    let mut skipped_depth = 0usize;
    for (line, tok) in tokens(text) {
        if skipped_depth > 0 {
            match tok {
                Tok::Open => skipped_depth += 1,
                Tok::Close => skipped_depth -= 1,
                Tok::Word(_) => {}
            }
            continue;
        }
        let Some(frame) = stack.last_mut() else {
            break;
        };
        match tok {
            Tok::Word(w) => match &mut frame.current {
                Some(s) if s.line == line && s.block.is_none() => s.words.push(w),
                _ => {
                    frame.finish();
                    frame.current = Some(Stmt {
                        line,
                        words: vec![w],
                        block: None,
                    });
                }
            },
            Tok::Open => {
                let Some(owner) = frame.current.take_if(|s| s.block.is_none()) else {
                    problems.push((line, "`{` opens a block for no keyword".to_string()));
                    continue;
                };
                if stack.len() > MAX_DEPTH {
                    problems.push((line, format!("blocks nested deeper than {MAX_DEPTH}")));
                    skipped_depth = 1;
                    for f in &mut stack {
                        f.too_deep = true;
                    }
                    if let Some(f) = stack.last_mut() {
                        f.current = Some(owner);
                    }
                    continue;
                }
                stack.push(Frame {
                    owner,
                    ..Frame::default()
                });
            }
            Tok::Close => {
                frame.finish();
                if stack.len() == 1 {
                    problems.push((line, "`}` closes no block".to_string()));
                    continue;
                }
                close(&mut stack, true);
            }
        }
    }
    while stack.len() > 1 {
        close(&mut stack, false);
    }
    let mut top = stack.pop().unwrap_or_default();
    top.finish();
    (top.stmts, problems)
}

/// Ends the innermost block: its owner, with the block, becomes the
/// parent's finished statement.
pub(super) fn close(stack: &mut Vec<Frame>, closed: bool) {
    let Some(mut frame) = stack.pop() else {
        return;
    };
    frame.finish();
    let mut owner = frame.owner;
    owner.block = Some(Block {
        stmts: frame.stmts,
        closed,
        too_deep: frame.too_deep,
    });
    if let Some(parent) = stack.last_mut() {
        parent.finish();
        parent.stmts.push(owner);
    }
}
