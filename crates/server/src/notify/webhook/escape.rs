//! Escaping and truncation of attacker-controlled text for each chat markup.
//!
//! Everything from CloudTrail (the user agent above all) is written by whoever holds the key.
//! Each escaper works one input character at a time and yields one piece per character, so a
//! length limit cuts between pieces and never through the middle of an escape (a trailing lone
//! `\` or half of `&amp;` would re-open the markup we just closed).

/// The pieces of `s` after escaping: one per input character.
type Pieces = Vec<String>;

/// Collapses every control character (newlines included) to a space. An attacker who can put
/// `\n*Source IP:* 10.0.0.1` in a user agent could otherwise forge a line of the message.
pub fn single_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Joins pieces, keeping at most `max` UTF-16 code units (the unit Discord and Slack count in,
/// and never fewer than characters), ending with `…` when something was cut.
fn join_limited(pieces: Pieces, max: usize) -> String {
    let len = |p: &str| p.encode_utf16().count();
    if pieces.iter().map(|p| len(p)).sum::<usize>() <= max {
        return pieces.concat();
    }
    let mut out = String::new();
    let mut used = 0;
    for piece in pieces {
        // One unit is kept for the ellipsis.
        if used + len(&piece) + 1 > max {
            break;
        }
        used += len(&piece);
        out.push_str(&piece);
    }
    out.push('…');
    out
}

/// Slack mrkdwn: `&`, `<` and `>` are its only escapable characters, and `<` is what starts a
/// link, a `<!channel>` or a `<@U…>` mention.
pub fn slack(s: &str, max: usize) -> String {
    join_limited(single_line(s).chars().map(slack_char).collect(), max)
}

fn slack_char(c: char) -> String {
    match c {
        '&' => "&amp;".into(),
        '<' => "&lt;".into(),
        '>' => "&gt;".into(),
        c => c.into(),
    }
}

/// A Slack inline code span: inside it `*bold*`, `_italic_` and `~strike~` stay literal. Slack
/// has no way to escape a backtick, so backticks become `ˋ` (U+02CB), which looks the same and
/// cannot close the span. An empty value shows as `-`, since an empty span prints two backticks.
pub fn slack_code(s: &str, max: usize) -> String {
    if s.is_empty() {
        return "-".into();
    }
    let pieces = single_line(s)
        .chars()
        .map(|c| if c == '`' { 'ˋ' } else { c })
        .map(slack_char)
        .collect();
    format!("`{}`", join_limited(pieces, max.saturating_sub(2)))
}

/// Backslash-escapes `specials`. A value that opens with digits, then `.` or `)`, then a space
/// would start an ordered list, so that one character is escaped too (an address such as
/// `203.0.113.7` is left as it is).
fn markdown(s: &str, specials: &[char], max: usize) -> String {
    let chars: Vec<char> = single_line(s).chars().collect();
    let digits = chars.iter().take_while(|c| c.is_ascii_digit()).count();
    let list_marker = digits > 0
        && matches!(chars.get(digits), Some('.' | ')'))
        && chars.get(digits + 1).is_none_or(|c| *c == ' ');
    let pieces = chars
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if specials.contains(&c) || (list_marker && i == digits) {
                format!("\\{c}")
            } else {
                c.into()
            }
        })
        .collect();
    join_limited(pieces, max)
}

/// Discord markdown: emphasis, code, spoilers (`||`), quotes, headings, lists, masked links and
/// `<@…>` mentions. (Pings are also switched off with `allowed_mentions`; this keeps the text
/// from even rendering as a mention.)
pub fn discord(s: &str, max: usize) -> String {
    const SPECIALS: &[char] = &[
        '\\', '*', '_', '~', '`', '|', '>', '<', '#', '-', '[', ']', '(', ')', '@',
    ];
    markdown(s, SPECIALS, max)
}

/// The Markdown subset of Adaptive Card text in Teams (CommonMark rules: a backslash makes any
/// ASCII punctuation literal). `&` is escaped too, or `&lt;` in a user agent would show as `<`.
pub fn teams(s: &str, max: usize) -> String {
    const SPECIALS: &[char] = &[
        '\\', '*', '_', '~', '`', '[', ']', '(', ')', '<', '>', '#', '+', '-', '!', '|', '&',
    ];
    markdown(s, SPECIALS, max)
}

/// Google Chat card text: a small HTML subset (`<b>`, `<a href>`, `<font>`…), so plain HTML
/// escaping makes it literal.
pub fn html(s: &str, max: usize) -> String {
    let pieces = single_line(s)
        .chars()
        .map(|c| match c {
            '&' => "&amp;".into(),
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.into(),
        })
        .collect();
    join_limited(pieces, max)
}

/// Plain text, only cut to `max` (for fields no markup reads, such as Slack `plain_text`).
pub fn plain(s: &str, max: usize) -> String {
    join_limited(single_line(s).chars().map(String::from).collect(), max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_escapes_control_characters_and_code_spans() {
        assert_eq!(
            slack("a & <!channel> >", 100),
            "a &amp; &lt;!channel&gt; &gt;"
        );
        assert_eq!(slack_code("x `y` *z*", 100), "`x ˋyˋ *z*`");
        assert_eq!(slack_code("", 100), "-");
        assert_eq!(slack("two\nlines\r\tend", 100), "two lines  end");
    }

    #[test]
    fn discord_and_teams_backslash_markup() {
        assert_eq!(discord("*b* @everyone", 100), r"\*b\* \@everyone");
        assert_eq!(discord(r"a\b", 100), r"a\\b");
        assert_eq!(
            teams("[x](http://e) **y**", 100),
            r"\[x\]\(http://e\) \*\*y\*\*"
        );
        // Only the list-making character of a leading number is escaped.
        assert_eq!(teams("1. item", 100), r"1\. item");
        assert_eq!(discord("203.0.113.7", 100), "203.0.113.7");
        assert_eq!(discord("42)", 100), r"42\)");
        assert_eq!(teams("v1.2", 100), "v1.2");
    }

    #[test]
    fn html_escapes_tags_and_quotes() {
        assert_eq!(
            html(r#"<a href="x">'&'</a>"#, 100),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn truncation_never_splits_an_escape() {
        // Ten stars escape to twenty units; a limit of 6 keeps two whole escapes and the ellipsis.
        assert_eq!(discord("**********", 6), r"\*\*…");
        assert_eq!(slack("<<<<", 9), "&lt;&lt;…");
        assert_eq!(slack("<<<<", 8), "&lt;…");
        assert_eq!(
            slack_code(&"a".repeat(50), 10),
            format!("`{}…`", "a".repeat(7))
        );
        assert_eq!(plain("short", 5), "short");
        assert_eq!(plain("longer", 5), "long…");
        // UTF-16 units: an emoji counts two.
        assert_eq!(plain("😀😀😀", 5), "😀😀…");
    }
}
