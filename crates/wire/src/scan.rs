//! Finding line ends fast: the one loop that both the parser and the encoder spend their time in.

/// The index of the first CR or LF. Eight bytes at a time: a word holds a CR or LF exactly when
/// XOR with that byte repeated leaves a zero byte, which the classic `(x - 0x01..) & !x & 0x80..`
/// test finds (it can flag bytes above a true match, never miss one; the byte scan settles it).
pub(crate) fn find_line_end(haystack: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const CRS: u64 = u64::from_ne_bytes([b'\r'; 8]);
    const LFS: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS != 0;

    let mut start = 0;
    for word in haystack.chunks_exact(8) {
        let word = u64::from_ne_bytes(word.try_into().expect("chunks of 8"));
        if has_zero(word ^ CRS) || has_zero(word ^ LFS) {
            break;
        }
        start += 8;
    }
    haystack[start..]
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .map(|i| i + start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_line_end_matches_a_plain_scan() {
        let mut hay = vec![b'a'; 40];
        assert_eq!(find_line_end(&hay), None);
        for at in 0..40 {
            for byte in [b'\r', b'\n'] {
                hay[at] = byte;
                assert_eq!(find_line_end(&hay), Some(at));
                hay[at] = b'a';
            }
        }
        // Bytes that differ from CR/LF by one bit must not match.
        let near: Vec<u8> = (0u8..=255).filter(|&b| b != b'\r' && b != b'\n').collect();
        assert_eq!(find_line_end(&near), None);
    }
}
