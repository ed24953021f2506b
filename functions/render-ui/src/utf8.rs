//! Logs are bytes, stored in chunks cut wherever a job's output happened to end, so a
//! character can be split across two chunks. Text sent to a browser must not split
//! it: [`decode_prefix`] turns the complete part of a buffer into text and leaves an
//! incomplete trailing sequence for later. Bytes that can never be UTF-8 become
//! U+FFFD, but the byte counts (log offsets) always count the real bytes.

/// Decodes the longest prefix of `bytes` that does not end inside a character.
/// Returns the text and how many bytes it covers; the rest (at most 3 bytes) is an
/// incomplete character that the next bytes may complete.
pub fn decode_prefix(bytes: &[u8]) -> (String, usize) {
    let mut text = String::with_capacity(bytes.len());
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                text.push_str(valid);
                return (text, bytes.len());
            }
            Err(error) => {
                let (valid, after) = rest.split_at(error.valid_up_to());
                // `valid_up_to` marks a checked boundary, so this cannot fail.
                text.push_str(std::str::from_utf8(valid).unwrap_or_default());
                match error.error_len() {
                    Some(bad) => {
                        text.push(char::REPLACEMENT_CHARACTER);
                        rest = &after[bad..];
                    }
                    None => return (text, bytes.len() - after.len()),
                }
            }
        }
    }
}

/// Skips continuation bytes at the start of `bytes`, for reading from an offset that
/// may fall inside a character; returns how many were skipped (at most 3).
pub fn char_boundary(bytes: &[u8]) -> usize {
    bytes.iter().take(3).take_while(|b| (**b & 0xC0) == 0x80).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_split_character_for_later() {
        let euro = "€".as_bytes(); // three bytes
        let mut first = b"price: ".to_vec();
        first.extend_from_slice(&euro[..2]);
        assert_eq!(decode_prefix(&first), ("price: ".to_string(), 7));
        let mut second = euro[..2].to_vec();
        second.extend_from_slice(&euro[2..]);
        second.extend_from_slice(b"5\n");
        assert_eq!(decode_prefix(&second), ("€5\n".to_string(), 5));
    }

    #[test]
    fn replaces_invalid_bytes_but_counts_them() {
        assert_eq!(decode_prefix(b"a\xffb"), ("a\u{FFFD}b".to_string(), 3));
        assert_eq!(decode_prefix(b"a\xe2\x28b"), ("a\u{FFFD}(b".to_string(), 4));
        assert_eq!(decode_prefix(b""), (String::new(), 0));
        assert_eq!(decode_prefix(b"\xf0\x9f"), (String::new(), 0));
    }

    #[test]
    fn finds_the_next_character_boundary() {
        let euro = "€".as_bytes();
        assert_eq!(char_boundary(&euro[1..]), 2);
        assert_eq!(char_boundary(b"abc"), 0);
        assert_eq!(char_boundary(b"\x80\x80\x80\x80"), 3);
    }
}
