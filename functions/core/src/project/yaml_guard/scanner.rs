//! The nesting scan: a walk over the text that finds where libyaml's tokens begin
//! and end, to count how deeply they nest before libyaml reads them.

use super::{MAX_NESTING, Refusal};

/// What the scan found in a text that isn't too deep.
#[derive(Debug)]
pub(super) struct Shape {
    /// How many alias tokens (`*name`) there are.
    pub aliases: usize,
}

/// A position as libyaml keeps it: `index` in bytes, `column` in characters.
#[derive(Clone, Copy, Debug)]
struct Mark {
    index: usize,
    line: usize,
    column: usize,
}

/// A walk over the text that mirrors libyaml's scanner (unsafe-libyaml 0.2.11, a
/// translation of libyaml 0.2.5: `yaml_parser_fetch_next_token` and the functions it
/// calls), keeping only what decides where tokens begin and end: the flow level, the
/// stack of block indentations, and whether a simple key may start.
pub(super) struct Scanner<'a> {
    source: &'a str,
    text: &'a [u8],
    /// Where libyaml's reader stops: the end, or the first character it refuses.
    end: usize,
    /// How far the text has been checked for such characters. It is checked a chunk
    /// at a time just ahead of the scan, so that a scan refusing early reads little.
    checked: usize,
    at: Mark,
    flow: usize,
    /// The current block indentation (-1 outside any block collection) and the ones
    /// it was rolled from.
    indent: isize,
    indents: Vec<isize>,
    simple_key_allowed: bool,
    /// Where a simple key may begin at flow level 0. Keys inside flow collections
    /// never change indentation, so they are not tracked.
    simple_key: Option<Mark>,
    /// The most flow levels open since `simple_key` began: if the key is resolved,
    /// the block mapping it starts encloses them.
    key_flow_peak: usize,
    aliases: usize,
}

impl<'a> Scanner<'a> {
    pub(super) fn new(source: &'a str) -> Self {
        let mut scanner = Scanner {
            source,
            text: source.as_bytes(),
            end: source.len(),
            checked: 0,
            at: Mark { index: 0, line: 0, column: 0 },
            flow: 0,
            indent: -1,
            indents: Vec::new(),
            simple_key_allowed: true,
            simple_key: None,
            key_flow_peak: 0,
            aliases: 0,
        };
        scanner.check_ahead();
        scanner
    }

    /// Keeps the text checked a little past the scan position (the scan looks up to
    /// six bytes ahead). libyaml's reader refuses control characters, U+FFFE and
    /// U+FFFF, and stops there: nothing after the first such character is scanned.
    fn check_ahead(&mut self) {
        const CHUNK: usize = 4096;
        while self.checked < self.end && self.checked < self.at.index + 8 {
            let from = self.checked;
            self.checked = self.end;
            for (i, c) in self.source[from..].char_indices() {
                if i >= CHUNK {
                    self.checked = from + i;
                    break;
                }
                let accepted = matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}' | '\u{A0}'..='\u{D7FF}'
                    | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..);
                if !accepted {
                    self.end = from + i;
                    self.checked = self.end;
                    break;
                }
            }
        }
    }

    /// Scans the whole text, or up to where it nests too deeply.
    pub(super) fn run(mut self) -> Result<Shape, Refusal> {
        // The reader drops a byte order mark at the very start.
        if self.text[..self.end].starts_with("\u{FEFF}".as_bytes()) {
            self.at.index = 3;
            self.check_ahead();
        }
        loop {
            self.scan_to_next_token();
            self.stale_simple_key();
            self.unroll_indent(self.at.column as isize);
            if self.at_end() {
                return Ok(Shape { aliases: self.aliases });
            }
            let before = self.at.index;
            self.fetch_token()?;
            if self.at.index == before {
                // libyaml stops here with an error; step over the character and go on.
                self.skip();
            }
        }
    }

    /// One token, from its first character (`yaml_parser_fetch_next_token`).
    fn fetch_token(&mut self) -> Result<(), Refusal> {
        let c = self.byte(0);
        if self.at.column == 0 && c == b'%' {
            // A directive: on success libyaml takes the whole line and its break.
            self.unroll_indent(-1);
            self.remove_simple_key();
            self.simple_key_allowed = false;
            while !self.is_breakz(0) {
                self.skip();
            }
            self.skip_line();
            return Ok(());
        }
        if self.at.column == 0 && self.document_indicator() {
            self.unroll_indent(-1);
            self.remove_simple_key();
            self.simple_key_allowed = false;
            self.skip_n(3);
            return Ok(());
        }
        match c {
            b'[' | b'{' => {
                self.save_simple_key();
                self.flow += 1;
                self.key_flow_peak = self.key_flow_peak.max(self.flow);
                self.note_depth(self.indents.len() + self.flow)?;
                self.simple_key_allowed = true;
                self.skip();
            }
            b']' | b'}' => {
                self.remove_simple_key();
                self.flow = self.flow.saturating_sub(1);
                self.simple_key_allowed = false;
                self.skip();
            }
            b',' => {
                self.remove_simple_key();
                self.simple_key_allowed = true;
                self.skip();
            }
            b'-' if self.is_blankz(1) => {
                self.roll_indent(self.at.column, 0)?;
                self.remove_simple_key();
                self.simple_key_allowed = true;
                self.skip();
            }
            b'?' if self.flow > 0 || self.is_blankz(1) => {
                self.roll_indent(self.at.column, 0)?;
                self.remove_simple_key();
                self.simple_key_allowed = self.flow == 0;
                self.skip();
            }
            b':' if self.flow > 0 || self.is_blankz(1) => {
                if self.flow == 0 {
                    match self.simple_key.take() {
                        Some(key) => {
                            // libyaml inserts the mapping's start before the key, so
                            // the key's own brackets are nested in it.
                            self.roll_indent(key.column, self.key_flow_peak)?;
                            self.simple_key_allowed = false;
                        }
                        None => {
                            self.roll_indent(self.at.column, 0)?;
                            self.simple_key_allowed = true;
                        }
                    }
                } else {
                    self.simple_key_allowed = false;
                }
                self.skip();
            }
            b'*' | b'&' => {
                if c == b'*' {
                    self.aliases += 1;
                }
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.skip();
                while is_alpha(self.byte(0)) {
                    self.skip();
                }
            }
            b'!' => {
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.scan_tag();
            }
            b'|' | b'>' if self.flow == 0 => {
                self.remove_simple_key();
                self.simple_key_allowed = true;
                self.scan_block_scalar();
            }
            b'\'' | b'"' => {
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.scan_flow_scalar(c == b'\'');
            }
            _ if self.starts_plain(c) => {
                self.save_simple_key();
                self.simple_key_allowed = false;
                self.scan_plain_scalar();
            }
            _ => {} // "found character that cannot start any token"
        }
        Ok(())
    }

    fn starts_plain(&self, c: u8) -> bool {
        !(self.is_blankz(0) || b"-?:,[]{}#&*!|>'\"%@`".contains(&c))
            || (c == b'-' && !self.is_blank(1))
            || (self.flow == 0 && (c == b'?' || c == b':') && !self.is_blankz(1))
    }

    fn note_depth(&self, depth: usize) -> Result<(), Refusal> {
        if depth > MAX_NESTING { Err(Refusal::TooDeep { line: self.at.line + 1 }) } else { Ok(()) }
    }

    /// Opens a block collection at `column` unless one is open there already;
    /// `inside` flow levels count as nested in it.
    fn roll_indent(&mut self, column: usize, inside: usize) -> Result<(), Refusal> {
        let column = column as isize;
        if self.flow == 0 && self.indent < column {
            self.indents.push(self.indent);
            self.indent = column;
            self.note_depth(self.indents.len() + inside)?;
        }
        Ok(())
    }

    fn unroll_indent(&mut self, column: isize) {
        if self.flow == 0 {
            while self.indent > column {
                self.indent = self.indents.pop().unwrap_or(-1);
            }
        }
    }

    fn save_simple_key(&mut self) {
        if self.simple_key_allowed && self.flow == 0 {
            self.simple_key = Some(self.at);
            self.key_flow_peak = 0;
        }
    }

    fn remove_simple_key(&mut self) {
        if self.flow == 0 {
            self.simple_key = None;
        }
    }

    /// A simple key must end on its line and within 1024 bytes.
    fn stale_simple_key(&mut self) {
        if let Some(key) = self.simple_key
            && (key.line < self.at.line || key.index + 1024 < self.at.index)
        {
            self.simple_key = None;
        }
    }

    /// Spaces, comments and line breaks (`yaml_parser_scan_to_next_token`).
    fn scan_to_next_token(&mut self) {
        loop {
            if self.at.column == 0 && self.text[self.at.index..self.end].starts_with("\u{FEFF}".as_bytes()) {
                self.skip();
            }
            while self.byte(0) == b' '
                || ((self.flow > 0 || !self.simple_key_allowed) && self.byte(0) == b'\t')
            {
                self.skip();
            }
            if self.byte(0) == b'#' {
                while !self.is_breakz(0) {
                    self.skip();
                }
            }
            if !self.is_break(0) {
                return;
            }
            self.skip_line();
            if self.flow == 0 {
                self.simple_key_allowed = true;
            }
        }
    }

    /// `!tag`, `!!tag`, `!handle!suffix` or `!<verbatim>` (`yaml_parser_scan_tag`).
    fn scan_tag(&mut self) {
        let verbatim = self.byte(1) == b'<';
        self.skip_n(if verbatim { 2 } else { 1 });
        // The handle's letters and `!` are URI characters too, and a `%` escape is a
        // `%` and hex digits, so one loop covers handle, suffix and escapes.
        while is_uri_char(self.byte(0), verbatim) {
            self.skip();
        }
        if verbatim && self.byte(0) == b'>' {
            self.skip();
        }
    }

    /// `|` or `>` and the lines that belong to it (`yaml_parser_scan_block_scalar`).
    fn scan_block_scalar(&mut self) {
        self.skip();
        let mut increment = 0;
        if matches!(self.byte(0), b'+' | b'-') {
            self.skip();
            if self.byte(0).is_ascii_digit() {
                increment = isize::from(self.byte(0) - b'0');
                self.skip();
            }
        } else if self.byte(0).is_ascii_digit() {
            increment = isize::from(self.byte(0) - b'0');
            self.skip();
            if matches!(self.byte(0), b'+' | b'-') {
                self.skip();
            }
        }
        while self.is_blank(0) {
            self.skip();
        }
        if self.byte(0) == b'#' {
            while !self.is_breakz(0) {
                self.skip();
            }
        }
        self.skip_line();
        let mut indent = 0;
        if increment != 0 {
            indent = if self.indent >= 0 { self.indent + increment } else { increment };
        }
        self.block_scalar_breaks(&mut indent);
        while self.at.column as isize == indent && !self.at_end() {
            while !self.is_breakz(0) {
                self.skip();
            }
            self.skip_line();
            self.block_scalar_breaks(&mut indent);
        }
    }

    /// Empty lines and indentation inside a block scalar; settles the indentation of
    /// its content when the header didn't give it (`yaml_parser_scan_block_scalar_breaks`).
    fn block_scalar_breaks(&mut self, indent: &mut isize) {
        let mut max_indent = 0;
        loop {
            while (*indent == 0 || (self.at.column as isize) < *indent) && self.byte(0) == b' ' {
                self.skip();
            }
            max_indent = max_indent.max(self.at.column as isize);
            if !self.is_break(0) {
                break;
            }
            self.skip_line();
        }
        if *indent == 0 {
            *indent = max_indent.max(self.indent + 1).max(1);
        }
    }

    /// `'…'` or `"…"`, over as many lines as it takes (`yaml_parser_scan_flow_scalar`).
    fn scan_flow_scalar(&mut self, single: bool) {
        let quote = if single { b'\'' } else { b'"' };
        self.skip();
        loop {
            if (self.at.column == 0 && self.document_indicator()) || self.at_end() {
                return;
            }
            while !self.is_blankz(0) {
                if single && self.byte(0) == b'\'' && self.byte(1) == b'\'' {
                    self.skip_n(2);
                } else if self.byte(0) == quote {
                    break;
                } else if !single && self.byte(0) == b'\\' && self.is_break(1) {
                    self.skip();
                    self.skip_line();
                    break;
                } else if !single && self.byte(0) == b'\\' {
                    let digits = match self.byte(1) {
                        b'x' => 2,
                        b'u' => 4,
                        b'U' => 8,
                        _ => 0,
                    };
                    self.skip_n(2 + digits);
                } else {
                    self.skip();
                }
            }
            if self.byte(0) == quote {
                self.skip();
                return;
            }
            while self.is_blank(0) || self.is_break(0) {
                if self.is_blank(0) {
                    self.skip();
                } else {
                    self.skip_line();
                }
            }
        }
    }

    /// A plain scalar, over as many lines as it takes (`yaml_parser_scan_plain_scalar`).
    fn scan_plain_scalar(&mut self) {
        let indent = self.indent + 1;
        let mut leading_blanks = false;
        loop {
            if (self.at.column == 0 && self.document_indicator()) || self.byte(0) == b'#' {
                break;
            }
            while !self.is_blankz(0) {
                let c = self.byte(0);
                if (c == b':' && (self.is_blankz(1) || (self.flow > 0 && b",?[]{}".contains(&self.byte(1)))))
                    || (self.flow > 0 && b",[]{}".contains(&c))
                {
                    break;
                }
                leading_blanks = false;
                self.skip();
            }
            if !(self.is_blank(0) || self.is_break(0)) {
                break;
            }
            while self.is_blank(0) || self.is_break(0) {
                if self.is_blank(0) {
                    self.skip();
                } else {
                    self.skip_line();
                    leading_blanks = true;
                }
            }
            if self.flow == 0 && (self.at.column as isize) < indent {
                break;
            }
        }
        if leading_blanks {
            self.simple_key_allowed = true;
        }
    }

    fn document_indicator(&self) -> bool {
        let rest = &self.text[self.at.index..self.end];
        (rest.starts_with(b"---") || rest.starts_with(b"...")) && self.is_blankz(3)
    }

    fn at_end(&self) -> bool {
        self.at.index >= self.end
    }

    /// The byte `offset` bytes ahead, or 0 past the end (libyaml's reader also ends
    /// its buffer with a NUL, and a NUL in the text is past `end`).
    fn byte(&self, offset: usize) -> u8 {
        let i = self.at.index + offset;
        if i < self.end { self.text[i] } else { 0 }
    }

    fn is_blank(&self, offset: usize) -> bool {
        matches!(self.byte(offset), b' ' | b'\t')
    }

    /// A line break: CR, LF, NEL, LS or PS.
    fn is_break(&self, offset: usize) -> bool {
        match self.byte(offset) {
            b'\r' | b'\n' => true,
            0xC2 => self.byte(offset + 1) == 0x85,
            0xE2 => self.byte(offset + 1) == 0x80 && matches!(self.byte(offset + 2), 0xA8 | 0xA9),
            _ => false,
        }
    }

    fn is_breakz(&self, offset: usize) -> bool {
        self.is_break(offset) || self.byte(offset) == 0
    }

    fn is_blankz(&self, offset: usize) -> bool {
        self.is_blank(offset) || self.is_breakz(offset)
    }

    /// Steps over one character (`SKIP`).
    fn skip(&mut self) {
        if self.at_end() {
            return;
        }
        let width = match self.text[self.at.index] {
            0x00..=0x7F => 1,
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            _ => 4,
        };
        self.at.index += width;
        self.at.column += 1;
        if self.at.index + 8 > self.checked {
            self.check_ahead();
        }
    }

    fn skip_n(&mut self, n: usize) {
        for _ in 0..n {
            self.skip();
        }
    }

    /// Steps over a line break, CR LF counting as one (`SKIP_LINE`).
    fn skip_line(&mut self) {
        if self.byte(0) == b'\r' && self.byte(1) == b'\n' {
            self.at.index += 2;
        } else if self.is_break(0) {
            self.at.index += if self.byte(0) < 0x80 {
                1
            } else if self.byte(0) == 0xC2 {
                2
            } else {
                3
            };
        } else {
            return;
        }
        self.at.column = 0;
        self.at.line += 1;
        self.check_ahead();
    }
}

/// Anchor and alias names, and tag handles: `[0-9A-Za-z_-]`.
fn is_alpha(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// Characters of a tag's URI; `,`, `[` and `]` only inside `!<…>`.
fn is_uri_char(c: u8, verbatim: bool) -> bool {
    is_alpha(c) || b";/?:@&=+$.%!~*'()".contains(&c) || (verbatim && b",[]".contains(&c))
}
