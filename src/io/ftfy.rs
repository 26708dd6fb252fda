//! OpenAI CLIP's text clean-up before BPE: the common cases of `ftfy.fix_text`, then
//! `html.unescape` twice and `strip()`, as `simple_tokenizer.basic_clean` does.
//!
//! Covered of ftfy 6.3's default fixes: HTML entities (only when a line holds no `<`), UTF-8
//! mojibake read as Latin-1 or Windows-1252 (whole runs and embedded ones, repeated for double
//! encoding), C1 controls, Latin ligatures, full- and half-width forms, curly quotes, line
//! breaks, terminal escapes and control characters. Not covered: ftfy's badness score (a run is
//! repaired whenever it decodes as UTF-8), the other single-byte codecs (Windows-1250/1251/...,
//! MacRoman, cp437), `restore_byte_a0` and lossy sequences. NFC, whitespace and lower case are
//! left to the tokenizer's normaliser, which does them in the same order.

use super::html::{self, CP1252_HIGH};

/// The text OpenAI's tokenizer hands to its BPE (before whitespace clean-up and lower case).
pub fn openai_clean(text: &str) -> String {
    let fixed = fix_text(text);
    html::unescape(&html::unescape(&fixed)).trim().to_string()
}

/// ftfy's `fix_text` for the cases listed in the module's doc: line by line, each line fixed
/// until nothing changes. As ftfy does, once a line holds `<` entities stay for the rest.
pub fn fix_text(text: &str) -> String {
    let mut html_on = true;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.contains('<') {
            html_on = false;
        }
        out.push_str(&fix_line(line, html_on));
    }
    out
}

fn fix_line(line: &str, html_on: bool) -> String {
    let mut text = line.to_string();
    // ftfy loops until a pass changes nothing; a few passes always suffice here.
    for _ in 0..8 {
        let before = text.clone();
        if html_on {
            text = html::unescape_strict(&text);
        }
        text = fix_mojibake(&text);
        text = text
            .chars()
            .map(|c| match u32::from(c) {
                0x80..=0x9F => CP1252_HIGH[(u32::from(c) - 0x80) as usize],
                _ => c,
            })
            .collect();
        text = fix_ligatures_and_width(&text);
        text = uncurl_quotes(&text);
        text = fix_line_breaks(&text);
        text = remove_terminal_escapes(&text);
        text.retain(|c| !is_control(c));
        if text == before {
            break;
        }
    }
    text
}

/// The byte a character stands for in Latin-1 or sloppy Windows-1252, if any.
fn byte_of(c: char) -> Option<u8> {
    let n = u32::from(c);
    if n <= 0xFF {
        return Some(n as u8);
    }
    CP1252_HIGH
        .iter()
        .position(|h| *h == c)
        .map(|i| 0x80 + i as u8)
}

/// Runs of characters whose bytes form UTF-8 multi-byte sequences, decoded ("cafÃ©" → "café",
/// "donâ€™t" → "don’t").
fn fix_mojibake(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if let Some(decoded) = utf8_at(&chars[i..]) {
            out.push(decoded.0);
            i += decoded.1;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// A multi-byte UTF-8 sequence spelt by the characters at the start of `chars`: the character
/// and how many characters it used.
fn utf8_at(chars: &[char]) -> Option<(char, usize)> {
    let lead = byte_of(*chars.first()?)?;
    let len = match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    let bytes: Vec<u8> = chars
        .get(..len)?
        .iter()
        .map(|c| byte_of(*c))
        .collect::<Option<_>>()?;
    let s = std::str::from_utf8(&bytes).ok()?;
    s.chars().next().map(|c| (c, len))
}

/// ftfy's `fix_latin_ligatures` and `fix_character_width` (NFKC of U+FF01-U+FFEF, U+3000 → space).
fn fix_ligatures_and_width(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let lig = match c {
            'Ĳ' => "IJ",
            'ĳ' => "ij",
            'ŉ' => "ʼn",
            'Ǳ' => "DZ",
            'ǲ' => "Dz",
            'ǳ' => "dz",
            'Ǆ' => "DŽ",
            'ǅ' => "Dž",
            'ǆ' => "dž",
            'Ǉ' => "LJ",
            'ǈ' => "Lj",
            'ǉ' => "lj",
            'Ǌ' => "NJ",
            'ǋ' => "Nj",
            'ǌ' => "nj",
            'ﬀ' => "ff",
            'ﬁ' => "fi",
            'ﬂ' => "fl",
            'ﬃ' => "ffi",
            'ﬄ' => "ffl",
            'ﬅ' => "ſt",
            'ﬆ' => "st",
            '\u{3000}' => " ",
            _ => "",
        };
        if !lig.is_empty() {
            out.push_str(lig);
        } else if ('\u{FF01}'..='\u{FFEF}').contains(&c) {
            let mut n = tokenizers::NormalizedString::from(c.to_string());
            n.nfkc();
            out.push_str(n.get());
        } else {
            out.push(c);
        }
    }
    out
}

fn uncurl_quotes(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{2BC}' | '\u{2018}'..='\u{201B}' => '\'',
            '\u{201C}'..='\u{201F}' => '"',
            _ => c,
        })
        .collect()
}

fn fix_line_breaks(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n")
}

/// `\x1b[` digits and semicolons, then a letter.
fn remove_terminal_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("\x1b[") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let params = after
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b';')
            .count();
        match after[params..].chars().next() {
            Some(c) if c.is_ascii_alphabetic() => rest = &after[params + 1..],
            _ => {
                out.push_str("\x1b[");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// ftfy's `remove_control_chars` set.
fn is_control(c: char) -> bool {
    matches!(u32::from(c),
        0x00..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F | 0x206A..=0x206F | 0xFEFF | 0xFFF9..=0xFFFC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_cases() {
        assert_eq!(openai_clean("it’s a cat &amp; a dog"), "it's a cat & a dog");
        assert_eq!(openai_clean("café ＡＢ ﬁsh"), "café AB fish");
        assert_eq!(openai_clean("cafÃ© and donâ€™t"), "café and don't");
        assert_eq!(openai_clean("Ã¢â‚¬Å“hiÃ¢â‚¬Â\u{9d}"), "\"hi\"");
        assert_eq!(openai_clean("  \x1b[31mred\x1b[0m\r\n"), "red");
        assert_eq!(openai_clean("naïve résumé"), "naïve résumé");
    }
}
