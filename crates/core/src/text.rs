//! Text from outside that we keep: one rule for characters no database column may hold.

/// `s` with every NUL (U+0000) replaced by U+FFFD. PostgreSQL's `text` type refuses NUL, so one
/// such character in any field of a record (a user agent, say) would fail the insert of every hit
/// that shares its group commit. JSON allows it (`\u0000`), so an attacker can send it; the
/// record is kept, with the character shown as replaced. Allocation-free when there is none.
pub fn without_nul(s: String) -> String {
    if s.contains('\0') {
        s.replace('\0', "\u{FFFD}")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::without_nul;

    #[test]
    fn nul_becomes_the_replacement_character_and_the_rest_stays() {
        assert_eq!(without_nul("a\0b\0".into()), "a\u{FFFD}b\u{FFFD}");
        assert_eq!(without_nul("aws-cli/2.15 ü".into()), "aws-cli/2.15 ü");
        assert_eq!(without_nul(String::new()), "");
    }
}
