//! Logs as HTML: text escaped, and ANSI colour codes (SGR: `ESC [ ... m`) turned into
//! `<span>`s with classes only (`ansi-fg-1`, `ansi-bg-208`, `ansi-bold`, ...), since
//! the pages' Content-Security-Policy allows no inline style: each of the 256 palette
//! colours has a class ([`palette_css`]), and an RGB colour takes the palette's nearest.
//! Every other escape sequence (cursor moves, titles, OSC
//! links) is removed, so a log never shows `^[[32m` garbage.
//!
//! [`Ansi`] converts a stream piece by piece: the style carries over from one piece to
//! the next, a sequence split between two pieces is completed by the second, and each
//! piece's HTML is balanced on its own (spans are closed at its end and reopened at
//! the start of the next), so a browser can append pieces as they arrive.

use std::fmt::Write as _;

/// An escape sequence longer than this is not one; it is dropped.
const MAX_ESCAPE: usize = 64;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Style {
    fg: Option<Colour>,
    bg: Option<Colour>,
    bold: bool,
    dim: bool,
    italic: bool,
    underline: bool,
}

/// A colour of the 256-colour palette: 0-15 the standard ones (8-15 bright), 16-231 a
/// 6×6×6 cube, 232-255 greys.
type Colour = u8;

impl Style {
    fn is_plain(&self) -> bool {
        *self == Style::default()
    }

    fn open_tag(&self) -> String {
        let mut classes = Vec::new();
        for (colour, kind) in [(self.fg, "fg"), (self.bg, "bg")] {
            if let Some(n) = colour {
                classes.push(format!("ansi-{kind}-{n}"));
            }
        }
        for (on, class) in [
            (self.bold, "ansi-bold"),
            (self.dim, "ansi-dim"),
            (self.italic, "ansi-italic"),
            (self.underline, "ansi-underline"),
        ] {
            if on {
                classes.push(class.to_string());
            }
        }
        let mut tag = String::from("<span");
        if !classes.is_empty() {
            let _ = write!(tag, " class=\"{}\"", classes.join(" "));
        }
        tag.push('>');
        tag
    }

    /// Applies one SGR sequence's parameters.
    fn apply(&mut self, params: &str) {
        let codes: Vec<u16> = params.split([';', ':']).map(|p| p.parse().unwrap_or(0)).collect();
        let mut i = 0;
        while i < codes.len() {
            match codes[i] {
                0 => *self = Style::default(),
                1 => self.bold = true,
                2 => self.dim = true,
                3 => self.italic = true,
                4 => self.underline = true,
                22 => (self.bold, self.dim) = (false, false),
                23 => self.italic = false,
                24 => self.underline = false,
                n @ 30..=37 => self.fg = Some((n - 30) as u8),
                39 => self.fg = None,
                n @ 40..=47 => self.bg = Some((n - 40) as u8),
                49 => self.bg = None,
                n @ 90..=97 => self.fg = Some((n - 90 + 8) as u8),
                n @ 100..=107 => self.bg = Some((n - 100 + 8) as u8),
                n @ (38 | 48) => {
                    let (colour, used) = extended(&codes[i + 1..]);
                    if n == 38 {
                        self.fg = colour
                    } else {
                        self.bg = colour
                    }
                    i += used;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

/// `5;N` (256 colours) or `2;R;G;B` after a 38 or 48; returns the colour and how many
/// codes it took.
fn extended(codes: &[u16]) -> (Option<Colour>, usize) {
    match codes {
        [5, n, ..] => (Some((*n).min(255) as u8), 2),
        [2, r, g, b, ..] => (Some(nearest(*r as u8, *g as u8, *b as u8)), 4),
        _ => (None, codes.len()),
    }
}

/// The six levels of each channel of the palette's colour cube.
const LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];

/// The RGB value of palette colour `n` from 16 up (the first 16 are themed in the
/// stylesheet).
fn rgb(n: u8) -> (u8, u8, u8) {
    match n {
        16..=231 => {
            let n = (n - 16) as usize;
            (LEVELS[n / 36], LEVELS[n / 6 % 6], LEVELS[n % 6])
        }
        232..=255 => {
            let grey = 8 + (n - 232) * 10;
            (grey, grey, grey)
        }
        _ => (0, 0, 0),
    }
}

/// The palette colour (16-255) nearest to an RGB one.
fn nearest(r: u8, g: u8, b: u8) -> Colour {
    let distance = |(x, y, z): (u8, u8, u8)| {
        [(x, r), (y, g), (z, b)].iter().map(|(a, b)| (i32::from(*a) - i32::from(*b)).pow(2)).sum::<i32>()
    };
    (16..=255u8).min_by_key(|n| distance(rgb(*n))).unwrap_or(16)
}

/// The stylesheet rules of palette colours 16-255, as foreground and background.
pub fn palette_css() -> String {
    let mut css = String::new();
    for n in 16..=255u8 {
        let (r, g, b) = rgb(n);
        let _ = writeln!(css, ".ansi-fg-{n}{{color:#{r:02x}{g:02x}{b:02x}}}");
        let _ = writeln!(css, ".ansi-bg-{n}{{background-color:#{r:02x}{g:02x}{b:02x}}}");
    }
    css
}

/// A log-to-HTML converter that keeps its state between pieces.
#[derive(Debug, Default)]
pub struct Ansi {
    style: Style,
    /// The start of an escape sequence that the next piece completes.
    pending: String,
}

impl Ansi {
    /// Converts the next piece of a log to balanced HTML.
    pub fn to_html(&mut self, text: &str) -> String {
        let mut input = std::mem::take(&mut self.pending);
        input.push_str(text);
        let mut html = String::with_capacity(input.len() + 32);
        let mut open = false;
        let mut rest = input.as_str();
        while !rest.is_empty() {
            let Some(esc) = rest.find('\x1b') else {
                self.text(&mut html, &mut open, rest);
                break;
            };
            self.text(&mut html, &mut open, &rest[..esc]);
            rest = &rest[esc..];
            match escape_len(rest) {
                Some(len) => {
                    let sequence = &rest[..len];
                    if let Some(params) = sequence.strip_prefix("\x1b[").and_then(|s| s.strip_suffix('m')) {
                        self.style.apply(params);
                        if open {
                            html.push_str("</span>");
                            open = false;
                        }
                    }
                    rest = &rest[len..];
                }
                None if rest.len() < MAX_ESCAPE => {
                    self.pending = rest.to_string();
                    break;
                }
                // Not an escape sequence after all: drop the ESC, keep the rest.
                None => rest = &rest[1..],
            }
        }
        if open {
            html.push_str("</span>");
        }
        html
    }

    /// Takes in a piece of a log without converting it: only the colours it sets
    /// carry over to the next piece.
    pub fn advance(&mut self, text: &str) {
        let _ = self.to_html(text);
    }

    /// Appends escaped text in the current style.
    fn text(&self, html: &mut String, open: &mut bool, text: &str) {
        if text.is_empty() {
            return;
        }
        if !*open && !self.style.is_plain() {
            html.push_str(&self.style.open_tag());
            *open = true;
        }
        for c in text.chars() {
            match c {
                '&' => html.push_str("&amp;"),
                '<' => html.push_str("&lt;"),
                '>' => html.push_str("&gt;"),
                '"' => html.push_str("&quot;"),
                '\'' => html.push_str("&#39;"),
                c => html.push(c),
            }
        }
    }
}

/// The length of the escape sequence at the start of `s` (which starts with ESC), or
/// `None` if it is incomplete (or too long to be one).
fn escape_len(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    match bytes.get(1)? {
        b'[' => {
            // CSI: parameters and intermediates, then one final byte in @..~.
            let end = bytes[2..].iter().take(MAX_ESCAPE).position(|b| (0x40..=0x7e).contains(b))?;
            Some(2 + end + 1)
        }
        b']' => {
            // OSC: ends with BEL or ESC \.
            let body = &bytes[2..];
            let bel = body.iter().take(MAX_ESCAPE * 4).position(|b| *b == 0x07).map(|i| 2 + i + 1);
            let st = body.windows(2).take(MAX_ESCAPE * 4).position(|w| w == b"\x1b\\").map(|i| 2 + i + 2);
            match (bel, st) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        // Two-byte sequences (ESC 7, ESC =, ...); the second byte is ASCII here.
        b if b.is_ascii() => Some(2),
        _ => Some(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(text: &str) -> String {
        Ansi::default().to_html(text)
    }

    #[test]
    fn colours_become_spans_and_text_is_escaped() {
        assert_eq!(html("plain <b> & 'q'"), "plain &lt;b&gt; &amp; &#39;q&#39;");
        assert_eq!(
            html("\x1b[32mok\x1b[0m done \x1b[1;31mFAIL\x1b[m"),
            "<span class=\"ansi-fg-2\">ok</span> done <span class=\"ansi-fg-1 ansi-bold\">FAIL</span>"
        );
        assert_eq!(html("\x1b[92;44mx"), "<span class=\"ansi-fg-10 ansi-bg-4\">x</span>");
        assert_eq!(html("\x1b[38;5;196mred"), "<span class=\"ansi-fg-196\">red</span>");
        assert_eq!(html("\x1b[38;2;1;2;3mrgb"), "<span class=\"ansi-fg-16\">rgb</span>");
        assert_eq!(html("\x1b[48;2;250;130;10mrgb"), "<span class=\"ansi-bg-208\">rgb</span>");
        assert!(palette_css().contains(".ansi-fg-196{color:#ff0000}"));
        assert!(palette_css().contains(".ansi-bg-244{background-color:#808080}"));
    }

    #[test]
    fn other_escapes_are_removed() {
        assert_eq!(html("a\x1b[2Kb\x1b[1Gc"), "abc");
        assert_eq!(html("\x1b]0;title\x07x"), "x");
        assert_eq!(html("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\"), "link");
    }

    #[test]
    fn state_and_split_sequences_carry_over_pieces() {
        let mut ansi = Ansi::default();
        assert_eq!(ansi.to_html("\x1b[31mred "), "<span class=\"ansi-fg-1\">red </span>");
        assert_eq!(ansi.to_html("still\x1b["), "<span class=\"ansi-fg-1\">still</span>");
        assert_eq!(ansi.to_html("0m plain"), " plain");
        assert_eq!(ansi.to_html("\x1b"), "");
        assert_eq!(ansi.to_html("[4mu"), "<span class=\"ansi-underline\">u</span>");
    }

    #[test]
    fn advancing_keeps_only_the_colours_in_force() {
        let mut ansi = Ansi::default();
        ansi.advance("\x1b[1mbold\x1b[0m \x1b[32mgreen <from here on> and on \x1b[4");
        assert_eq!(ansi.to_html("mstill"), "<span class=\"ansi-fg-2 ansi-underline\">still</span>");
    }
}
