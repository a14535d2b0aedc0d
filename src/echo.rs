//! Caller input quoted back in an error message, cut short. A status
//! message travels in the response's HTTP/2 headers, so echoing a 100 KB
//! tenant name whole would overflow the client's header limit and turn a
//! clear NOT_FOUND into RESOURCE_EXHAUSTED. Every message that quotes what
//! a caller (or a file from outside) sent quotes it through [`Echo`].

use std::fmt;

/// Characters of the input an [`Echo`] shows before cutting.
pub const SHOWN: usize = 64;

/// `{:?}` of a string, cut after [`SHOWN`] characters with its full size
/// in bytes: `"aaaa…"…(100000 bytes)`.
#[derive(Clone, Copy)]
pub struct Echo<'a>(pub &'a str);

impl fmt::Debug for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(SHOWN) {
            None => write!(f, "{:?}", self.0),
            Some((cut, _)) => write!(f, "{:?}…({} bytes)", &self.0[..cut], self.0.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_input_is_quoted_whole() {
        assert_eq!(format!("{:?}", Echo("web")), "\"web\"");
        let exact = "x".repeat(SHOWN);
        assert_eq!(format!("{:?}", Echo(&exact)), format!("{exact:?}"));
    }

    #[test]
    fn long_input_is_cut_with_its_size() {
        let long = "a".repeat(100_000);
        let shown = format!("{:?}", Echo(&long));
        assert_eq!(shown, format!("\"{}\"…(100000 bytes)", "a".repeat(SHOWN)));
    }

    #[test]
    fn the_cut_falls_between_characters() {
        let long = "é".repeat(100);
        let shown = format!("{:?}", Echo(&long));
        assert_eq!(shown, format!("\"{}\"…(200 bytes)", "é".repeat(SHOWN)));
    }

    #[test]
    fn control_characters_stay_escaped() {
        let long = "\n".repeat(1_000);
        let shown = format!("{:?}", Echo(&long));
        assert!(shown.len() < 200 && !shown.contains('\n'), "{shown}");
    }
}
