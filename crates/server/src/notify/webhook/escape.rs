//! Escaping and truncation of attacker-controlled text for each chat markup.
//!
//! Everything from CloudTrail (the user agent above all) is written by whoever holds the key.
//! Each escaper works one input character at a time and yields one piece per character, so a
//! length limit cuts between pieces and never through the middle of an escape (a trailing lone
//! `\` or half of `&amp;` would re-open the markup we just closed).

/// The pieces of `s` after escaping: one per input character.
type Pieces = Vec<String>;

/// Whether `c` breaks a line: a control character (C0 and C1, newlines included) or Unicode's
/// line and paragraph separators (U+2028, U+2029), which chat clients and mail readers also
/// break lines on.
pub fn breaks_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Whether `c` is a bidirectional control: an embedding or override (U+202A–U+202E), an
/// isolate (U+2066–U+2069), or a mark (LRM U+200E, RLM U+200F, ALM U+061C). With one, a user
/// agent can be made to read in an order other than its bytes' (`txt.exe` shown as `exe.txt`).
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

/// Collapses every line break (controls and U+2028/U+2029) to a space, and shows every bidi
/// control as U+FFFD, so the reader sees that something was there. An attacker who can put
/// `\n*Source IP:* 10.0.0.1` in a user agent could otherwise forge a line of the message.
pub fn single_line(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            c if breaks_line(c) => ' ',
            c if is_bidi_control(c) => '\u{FFFD}',
            c => c,
        })
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

/// Mattermost Markdown: a backslash before the punctuation Markdown reads anywhere in a line
/// (and before `-`, `+` or `#` that would start a list or heading), and `@` shown as the
/// full-width `＠`, so no mention (`@channel`, `@all`, `@here`, `@name`) is ever made.
pub fn mattermost(s: &str, max: usize) -> String {
    const SPECIALS: &[char] = &[
        '\\', '*', '_', '~', '`', '[', ']', '(', ')', '<', '>', '!', '|', '&',
    ];
    let pieces = single_line(s)
        .chars()
        .enumerate()
        .map(|(i, c)| match c {
            '@' => "＠".into(),
            c if SPECIALS.contains(&c) => format!("\\{c}"),
            '-' | '+' | '#' if i == 0 => format!("\\{c}"),
            c => c.into(),
        })
        .collect();
    join_limited(pieces, max)
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

    #[test]
    fn bidi_and_line_separators_never_reach_the_markup() {
        let s = "a\u{202E}txt.exe\u{2028}*Source IP:* 10.0.0.1\u{2029}b\u{2066}c\u{061C}";
        assert_eq!(
            slack(s, 100),
            "a\u{FFFD}txt.exe *Source IP:* 10.0.0.1 b\u{FFFD}c\u{FFFD}"
        );
        assert_eq!(plain("x\u{200E}y\u{200F}z", 100), "x\u{FFFD}y\u{FFFD}z");
    }

    /// What no escaped text may hold: a line break of any kind, or a bidi control.
    fn hazard(c: char) -> bool {
        breaks_line(c) || is_bidi_control(c)
    }

    /// Every escaper, at a length that keeps everything and at one that cuts.
    fn all_escapers(s: &str, max: usize) -> Vec<(&'static str, String)> {
        vec![
            ("slack", slack(s, max)),
            ("slack_code", slack_code(s, max)),
            ("discord", discord(s, max)),
            ("teams", teams(s, max)),
            ("mattermost", mattermost(s, max)),
            ("html", html(s, max)),
            ("plain", plain(s, max)),
            ("single_line", single_line(s)),
        ]
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// The characters an attacker would slip in: every bidi control, both separators, and
        /// C0/C1 controls.
        fn hostile_char() -> impl Strategy<Value = char> {
            prop_oneof![
                prop::sample::select(vec![
                    '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}',
                    '\u{2067}', '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}', '\u{061C}',
                    '\u{2028}', '\u{2029}', '\n', '\r', '\t', '\u{0}', '\u{1B}', '\u{7F}',
                    '\u{85}',
                ]),
                (0u32..0x20).prop_map(|c| char::from_u32(c).unwrap()),
                (0x7Fu32..0xA0).prop_map(|c| char::from_u32(c).unwrap()),
            ]
        }

        /// Ordinary words (letters and digits, which no markup escapes) with hostile characters
        /// between and around them.
        fn mixed() -> impl Strategy<Value = (Vec<String>, String)> {
            prop::collection::vec(
                (
                    "[A-Za-z0-9]{1,12}",
                    prop::collection::vec(hostile_char(), 0..4),
                ),
                0..12,
            )
            .prop_map(|parts| {
                let mut text = String::new();
                let mut words = Vec::new();
                for (word, hostile) in parts {
                    text.push_str(&word);
                    text.extend(hostile);
                    words.push(word);
                }
                (words, text)
            })
        }

        proptest! {
            #[test]
            fn no_escaper_lets_a_hazard_through_and_words_survive((words, text) in mixed()) {
                for (name, out) in all_escapers(&text, 100_000) {
                    prop_assert!(!out.chars().any(hazard), "{name}: {out:?}");
                    for word in &words {
                        prop_assert!(out.contains(word.as_str()), "{name} lost {word:?}: {out:?}");
                    }
                }
            }

            #[test]
            fn cut_text_holds_no_hazard_either((_, text) in mixed(), max in 1usize..40) {
                for (name, out) in all_escapers(&text, max) {
                    prop_assert!(!out.chars().any(hazard), "{name}: {out:?}");
                }
            }

            #[test]
            fn any_text_at_all_comes_out_clean(
                text in prop::collection::vec(prop_oneof![any::<char>(), hostile_char()], 0..64)
                    .prop_map(|cs| cs.into_iter().collect::<String>()),
            ) {
                for (name, out) in all_escapers(&text, 100_000) {
                    prop_assert!(!out.chars().any(hazard), "{name}: {out:?}");
                }
            }

            #[test]
            fn no_chat_payload_carries_a_hazard((_, text) in mixed()) {
                use crate::notify::webhook::{hostile_alert, payload, WebhookFlavour};
                let mut alert = hostile_alert();
                alert.user_agent = text.clone();
                alert.memo = text.clone();
                alert.headline = text.clone();
                alert.event_name = text.clone();
                alert.source_ip = text.clone();
                alert.error_code = Some(text.clone());
                alert.error_message = Some(text.clone());
                alert.note = Some(text.clone());
                alert.source_labels = vec![text.clone()];
                for flavour in [
                    WebhookFlavour::Slack,
                    WebhookFlavour::Discord,
                    WebhookFlavour::Teams,
                    WebhookFlavour::GoogleChat,
                    WebhookFlavour::Mattermost,
                ] {
                    let body = payload(flavour, &alert);
                    let mut strings = Vec::new();
                    collect_strings(&body, &mut strings);
                    for s in strings {
                        // Our own layout may break lines (`\n` between label and value); what
                        // must never appear is a separator or bidi control from the text.
                        prop_assert!(
                            !s.chars().any(|c| c != '\n' && hazard(c)),
                            "{flavour:?}: {s:?}"
                        );
                    }
                }
            }
        }

        fn collect_strings(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::String(s) => out.push(s.clone()),
                serde_json::Value::Array(a) => a.iter().for_each(|v| collect_strings(v, out)),
                serde_json::Value::Object(o) => o.values().for_each(|v| collect_strings(v, out)),
                _ => {}
            }
        }
    }
}
