//! HTML character references decoded as Python's `html.unescape` and ftfy's `unescape_html` do.

use html_escape::NAMED_ENTITIES;

/// The entity names HTML accepts without a semicolon (the WHATWG list's legacy names).
const LEGACY: [&str; 106] = [
    "AElig", "AMP", "Aacute", "Acirc", "Agrave", "Aring", "Atilde", "Auml", "COPY", "Ccedil",
    "ETH", "Eacute", "Ecirc", "Egrave", "Euml", "GT", "Iacute", "Icirc", "Igrave", "Iuml", "LT",
    "Ntilde", "Oacute", "Ocirc", "Ograve", "Oslash", "Otilde", "Ouml", "QUOT", "REG", "THORN",
    "Uacute", "Ucirc", "Ugrave", "Uuml", "Yacute", "aacute", "acirc", "acute", "aelig", "agrave",
    "amp", "aring", "atilde", "auml", "brvbar", "ccedil", "cedil", "cent", "copy", "curren", "deg",
    "divide", "eacute", "ecirc", "egrave", "eth", "euml", "frac12", "frac14", "frac34", "gt",
    "iacute", "icirc", "iexcl", "igrave", "iquest", "iuml", "laquo", "lt", "macr", "micro",
    "middot", "nbsp", "not", "ntilde", "oacute", "ocirc", "ograve", "ordf", "ordm", "oslash",
    "otilde", "ouml", "para", "plusmn", "pound", "quot", "raquo", "reg", "sect", "shy", "sup1",
    "sup2", "sup3", "szlig", "thorn", "times", "uacute", "ucirc", "ugrave", "uml", "uuml",
    "yacute", "yen", "yuml",
];

/// Windows-1252's characters for bytes 0x80-0x9F; the five bytes it leaves undefined stand for
/// themselves ("sloppy" Windows-1252, as ftfy and `html.unescape` treat them).
pub const CP1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{81}', '\u{201A}', '\u{192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{2C6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8D}', '\u{17D}', '\u{8F}',
    '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{2DC}', '\u{2122}', '\u{161}', '\u{203A}', '\u{153}', '\u{9D}', '\u{17E}', '\u{178}',
];

/// The value of a named entity written with its semicolon (`name` without `&` and `;`).
fn named(name: &str) -> Option<&'static str> {
    NAMED_ENTITIES
        .binary_search_by(|(n, _)| (*n).cmp(name.as_bytes()))
        .ok()
        .map(|i| NAMED_ENTITIES[i].1)
}

/// The value of a name that may appear without its semicolon.
fn legacy(name: &str) -> Option<&'static str> {
    LEGACY.contains(&name).then(|| named(name)).flatten()
}

/// A numeric reference's text as `html.unescape` gives it.
fn numeric(digits: &str, radix: u32) -> String {
    let Ok(n) = u32::from_str_radix(digits, radix) else {
        return "\u{FFFD}".into(); // too large for u32: beyond U+10FFFF
    };
    match n {
        0 => "\u{FFFD}".into(),
        0x0D => "\r".into(),
        0x80..=0x9F => CP1252_HIGH[(n - 0x80) as usize].to_string(),
        0xD800..=0xDFFF | 0x11_0000.. => "\u{FFFD}".into(),
        0x01..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F | 0xFDD0..=0xFDEF => String::new(),
        _ if n & 0xFFFE == 0xFFFE => String::new(),
        _ => char::from_u32(n).map_or_else(|| "\u{FFFD}".into(), String::from),
    }
}

/// Python's `html.unescape`: numeric references (with or without `;`), named references, the
/// longest legacy name when the semicolon is missing (`&ampx` → `&x`).
pub fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (replacement, used) = reference(after);
        match replacement {
            Some(r) => {
                out.push_str(&r);
                rest = &after[used..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// One reference after `&`: its text and the bytes it used, or `None` when nothing matches.
fn reference(after: &str) -> (Option<String>, usize) {
    let semicolon = |end: usize| usize::from(after[end..].starts_with(';'));
    if let Some(num) = after.strip_prefix('#') {
        let (digits, radix, skip) = match num.strip_prefix(['x', 'X']) {
            Some(hex) => (hex, 16, 2),
            None => (num, 10, 1),
        };
        let len = digits
            .bytes()
            .take_while(|b| b.is_ascii_digit() || (radix == 16 && b.is_ascii_hexdigit()))
            .count();
        if len == 0 {
            return (None, 0);
        }
        let end = skip + len;
        return (Some(numeric(&digits[..len], radix)), end + semicolon(end));
    }
    // [^\t\n\f <&#;]{1,32};?
    let name_len: usize = after
        .char_indices()
        .take_while(|(_, c)| !matches!(c, '\t' | '\n' | '\x0C' | ' ' | '<' | '&' | '#' | ';'))
        .take(32)
        .last()
        .map_or(0, |(i, c)| i + c.len_utf8());
    if name_len == 0 {
        return (None, 0);
    }
    let name = &after[..name_len];
    let with_semicolon = semicolon(name_len) == 1;
    if with_semicolon {
        if let Some(v) = named(name) {
            return (Some(v.to_string()), name_len + 1);
        }
    } else if let Some(v) = legacy(name) {
        return (Some(v.to_string()), name_len);
    }
    // The longest legacy prefix of at least two characters; the rest stays as text.
    let matched = &after[..name_len + usize::from(with_semicolon)];
    let cuts: Vec<usize> = matched.char_indices().map(|(i, _)| i).skip(2).collect();
    for &cut in cuts.iter().rev() {
        if let Some(v) = legacy(&matched[..cut]) {
            return (Some(format!("{v}{}", &matched[cut..])), matched.len());
        }
    }
    (None, 0)
}

/// ftfy's `unescape_html`: only references that end in `;` (`&#?[0-9A-Za-z]{1,24};`), plus the
/// all-caps forms of lower-case names whose upper-case form is not an entity (`&EACUTE;` → É).
pub fn unescape_strict(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let hash = usize::from(after.starts_with('#'));
        let len = after[hash..]
            .bytes()
            .take_while(u8::is_ascii_alphanumeric)
            .count();
        let end = hash + len;
        if (1..=24).contains(&len) && after[end..].starts_with(';') {
            if let Some(r) = strict_value(&after[..end]) {
                out.push_str(&r);
                rest = &after[end + 1..];
                continue;
            }
        }
        out.push('&');
        rest = after;
    }
    out.push_str(rest);
    out
}

fn strict_value(body: &str) -> Option<String> {
    let full = format!("&{body};");
    if body.starts_with('#') {
        // Kept when html.unescape leaves the semicolon (it decoded only a part).
        let u = unescape(&full);
        return (!u.contains(';')).then_some(u);
    }
    if let Some(v) = named(body) {
        return Some(v.to_string());
    }
    let lower = body.to_lowercase();
    let all_caps = body != lower && body == body.to_uppercase();
    if all_caps && unescape(&full) == full {
        return named(&lower).map(str::to_uppercase);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescape_follows_python() {
        assert_eq!(unescape("a &amp; b"), "a & b");
        assert_eq!(unescape("&amp;amp;"), "&amp;");
        assert_eq!(unescape("&ampx &notit; &hellip"), "&x ¬it; &hellip");
        assert_eq!(unescape("&#233;&#x41;&#X42&#0;&#128;&#1;"), "éAB\u{FFFD}€");
        assert_eq!(unescape("&#99999999999; &;"), "\u{FFFD} &;");
        assert_eq!(unescape("&eacute;t&eacute; &checkmark;"), "été ✓");
    }

    #[test]
    fn strict_unescape_needs_the_semicolon() {
        assert_eq!(unescape_strict("this&not that"), "this&not that");
        assert_eq!(unescape_strict("P&EACUTE;REZ &lt;b&gt;"), "PÉREZ <b>");
        assert_eq!(unescape_strict("&#233; &#x41;"), "é A");
    }
}
