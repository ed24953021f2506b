//! Masking secret values in a log as it is written, before anything is stored: every
//! occurrence of a granted secret's value becomes `***`, so no view of the log (page,
//! raw log, live stream, download) can show it.
//!
//! The job's output arrives in pieces of any size, so a value may be split across two
//! writes, and so across two chunks or two reads of a live stream: the masker holds
//! back the end of what it has seen while that end could still begin a value, and lets
//! it go once it can't (or when the log ends). Line breaks inside a value are skipped
//! when matching (`fold -w3` does not get a value past it), and are masked with it.
//!
//! Masking is a guard against accidents — a value echoed by a script or a verbose
//! tool — not a wall against a job that wants to show what it was given (it could
//! encode it first).

/// What replaces each value.
pub const MASK: &[u8] = b"***";

/// Masks a set of values in a stream of bytes.
#[derive(Debug)]
pub struct Masker {
    values: Vec<Vec<u8>>,
    /// Whether a byte begins some value.
    first: [bool; 256],
    /// Seen but not yet let go: it may begin a value.
    held: Vec<u8>,
    /// Held back at most: room for the longest value with a CRLF after each byte.
    max_hold: usize,
}

fn is_break(byte: u8) -> bool {
    matches!(byte, b'\n' | b'\r')
}

/// How `input[at..]` matches `value`, skipping line breaks in the input.
enum Match {
    /// The whole value, ending before this index.
    Whole(usize),
    /// The input ended part-way through: it may still become the value.
    Partial,
    No,
}

fn match_at(input: &[u8], at: usize, value: &[u8]) -> Match {
    let mut i = at;
    let mut matched = 0;
    while matched < value.len() {
        let Some(&byte) = input.get(i) else { return Match::Partial };
        if is_break(byte) && matched > 0 {
            i += 1;
            continue;
        }
        if byte != value[matched] {
            return Match::No;
        }
        matched += 1;
        i += 1;
    }
    Match::Whole(i)
}

impl Masker {
    /// A masker of `values`; empty values and line breaks in them are ignored (a value
    /// is matched line breaks or not).
    pub fn new<I, S>(values: I) -> Masker
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut values: Vec<Vec<u8>> = values
            .into_iter()
            .map(|v| v.as_ref().iter().copied().filter(|b| !is_break(*b)).collect::<Vec<u8>>())
            .filter(|v| !v.is_empty())
            .collect();
        // Longest first, so that a value containing another is masked whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        let mut first = [false; 256];
        for value in &values {
            first[value[0] as usize] = true;
        }
        let max_hold = values.first().map_or(0, |v| v.len() * 3 + 2);
        Masker { values, first, held: Vec::new(), max_hold }
    }

    /// Whether there is anything to mask.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Takes the next piece of output; returns what can be let go, masked.
    pub fn feed(&mut self, data: &[u8]) -> Vec<u8> {
        if self.values.is_empty() {
            return data.to_vec();
        }
        let mut input = std::mem::take(&mut self.held);
        input.extend_from_slice(data);
        self.mask(&input, false)
    }

    /// The end of the output: lets go of what was held.
    pub fn finish(&mut self) -> Vec<u8> {
        let input = std::mem::take(&mut self.held);
        self.mask(&input, true)
    }

    fn mask(&mut self, input: &[u8], at_end: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        let mut i = 0;
        'scan: while i < input.len() {
            if self.first[input[i] as usize] {
                // Longest first: a partial match of a longer value counts even when a
                // shorter one is whole here (more output may complete the longer).
                let mut partial = false;
                let mut whole = None;
                for value in &self.values {
                    match match_at(input, i, value) {
                        Match::Whole(end) => {
                            whole = Some(end);
                            break;
                        }
                        Match::Partial => partial = true,
                        Match::No => {}
                    }
                }
                if partial && !at_end && input.len() - i <= self.max_hold {
                    // It may begin a value: hold it and the rest back for more output.
                    self.held.extend_from_slice(&input[i..]);
                    return out;
                }
                if let Some(end) = whole {
                    out.extend_from_slice(MASK);
                    i = end;
                    continue 'scan;
                }
            }
            out.push(input[i]);
            i += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(masker: &mut Masker, pieces: &[&[u8]]) -> String {
        let mut out = Vec::new();
        for piece in pieces {
            out.extend(masker.feed(piece));
        }
        out.extend(masker.finish());
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn masks_values_whole_and_across_pieces() {
        let mut m = Masker::new(["hunter2", "s3cr3t-token"]);
        assert_eq!(run(&mut m, &[b"pass=hunter2 ok\n"]), "pass=*** ok\n");
        assert_eq!(run(&mut m, &[b"pass=hun", b"ter2 and s3cr", b"3t-token!"]), "pass=*** and ***!");
        // One byte at a time, as a slow job writes.
        let text = b"x hunter2 y hunter2";
        let pieces: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(run(&mut m, &pieces), "x *** y ***");
    }

    #[test]
    fn holds_back_only_what_may_begin_a_value() {
        let mut m = Masker::new(["hunter2"]);
        assert_eq!(m.feed(b"hello hun"), b"hello ");
        assert_eq!(m.feed(b"gry"), b"hungry", "not the value: let go at once");
        assert_eq!(m.feed(b"plain"), b"plain");
        assert_eq!(m.feed(b" hunt"), b" ");
        assert_eq!(m.finish(), b"hunt", "the end of the log lets go of the rest");
        let breaks = [b"h".as_slice(), &[b'\n'; 100]].concat();
        assert_eq!(m.feed(&breaks), breaks, "line breaks alone are not held back for ever");
    }

    #[test]
    fn line_breaks_do_not_split_a_value_past_it() {
        let mut m = Masker::new(["abcdefgh"]);
        // `fold -w3`
        assert_eq!(run(&mut m, &[b"abc\nde", b"f\ngh\n"]), "***\n");
        assert_eq!(run(&mut m, &[b"ab\r\ncdefgh"]), "***");
        assert_eq!(run(&mut m, &[b"\nabcdefgh"]), "\n***", "a break before it stays");
        // A CRLF after every byte, written one byte at a time.
        let crlf: Vec<u8> = b"abcdefgh".iter().flat_map(|&b| [b, b'\r', b'\n']).collect();
        let bytes: Vec<&[u8]> = crlf.chunks(1).collect();
        assert_eq!(run(&mut m, &bytes), "***\r\n");
    }

    #[test]
    fn longer_values_win_and_empty_ones_are_ignored() {
        let mut m = Masker::new(["abc", "abcdef", ""]);
        assert_eq!(run(&mut m, &[b"abcdef abc ab"]), "*** *** ab");
        assert_eq!(run(&mut m, &[b"xabc", b"def"]), "x***", "the longer value, split, is masked whole");
        let mut none = Masker::new(Vec::<String>::new());
        assert!(none.is_empty());
        assert_eq!(run(&mut none, &[b"anything"]), "anything");
    }
}
