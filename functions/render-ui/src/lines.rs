//! Line numbers for a log shown as HTML: each line starts with a link to itself
//! (`<a class="ln" id="L12" href="...#L12">12</a>`), so a line can be pointed at. The
//! numbers count from the start of the part of the log a page shows: the log's own
//! line numbers when that part starts at its beginning; otherwise the links carry the
//! part's `?from=` so that they stay true. The build page's script numbers the lines
//! that arrive live the same way.

/// `html` (a log's text, escaped, colours as spans) with each line numbered from
/// `first`; `open`: whether the line before `html` did not end, so its first piece
/// continues that line. Returns the HTML, the next line's number, and whether the
/// last line is still open.
pub fn numbered(html: &str, first: u64, open: bool, page: &str) -> (String, u64, bool) {
    let mut out = String::with_capacity(html.len() + html.len() / 8);
    let mut number = first;
    let mut at_line_start = !open;
    for piece in html.split_inclusive('\n') {
        if at_line_start {
            out.push_str(&format!(r##"<a class="ln" id="L{number}" href="{page}#L{number}">{number}</a>"##));
            number += 1;
        }
        out.push_str(piece);
        at_line_start = piece.ends_with('\n');
    }
    let still_open = if html.is_empty() { open } else { !at_line_start };
    (out, number, still_open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_each_line_and_carries_an_open_line_on() {
        let (html, next, open) = numbered("one\n<span class=\"ansi-fg-1\">two\nthr</span>", 1, false, "");
        assert_eq!(
            html,
            "<a class=\"ln\" id=\"L1\" href=\"#L1\">1</a>one\n\
             <a class=\"ln\" id=\"L2\" href=\"#L2\">2</a><span class=\"ansi-fg-1\">two\n\
             <a class=\"ln\" id=\"L3\" href=\"#L3\">3</a>thr</span>"
        );
        assert_eq!((next, open), (4, true));
        // The rest of line 3 arrives: no new number until after its newline.
        let (html, next, open) = numbered("ee\nfour\n", next, open, "/builds/7?from=10");
        assert_eq!(html, "ee\n<a class=\"ln\" id=\"L4\" href=\"/builds/7?from=10#L4\">4</a>four\n");
        assert_eq!((next, open), (5, false));
        assert_eq!(numbered("", 5, false, ""), (String::new(), 5, false));
        assert_eq!(numbered("", 5, true, ""), (String::new(), 5, true));
    }
}
