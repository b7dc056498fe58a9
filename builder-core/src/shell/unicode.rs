//! Go's Unicode category tests (`unicode.IsLetter`, `unicode.IsDigit`,
//! `strconv.IsPrint`), exact for Unicode 15.0.0: Rust's `is_alphabetic`
//! and `is_numeric` take more characters (`²`, `½`, marks), and BuildKit's
//! lexer and parser decide with Go's.
use super::unicode_tables::{DIGIT, GRAPHIC, LETTER};

fn in_table(table: &[(u32, u32)], c: char) -> bool {
    let cp = u32::from(c);
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Go's `unicode.IsLetter` (general category L).
pub(crate) fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    in_table(LETTER, c)
}

/// Go's `unicode.IsDigit` (general category Nd).
pub(crate) fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    in_table(DIGIT, c)
}

/// Go's `strconv.IsPrint`: letters, marks, numbers, punctuation, symbols and
/// the ASCII space.
pub(crate) fn is_print(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    in_table(GRAPHIC, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories() {
        assert!(is_letter('é') && is_letter('ж') && !is_letter('1') && !is_letter('_'));
        assert!(is_digit('٣') && !is_digit('Ⅳ') && !is_digit('²'));
        assert!(is_print('é') && is_print(' ') && !is_print('\u{7f}'));
    }
}
