//! Page-reading helpers shared by the integration tests (`tests/it/support`) and
//! `rollcall-bench`, which both sign in and consent through Rollcall's real pages.

/// The value of `<input name="NAME" value="...">` in a page, unescaped.
pub fn form_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let tag_start = html[..at].rfind('<')?;
    let tag_end = at + html[at..].find('>')?;
    let tag = &html[tag_start..tag_end];
    let v = tag.find("value=\"")? + 7;
    let end = tag[v..].find('"')?;
    Some(html_unescape(&tag[v..v + end]))
}

/// Decode HTML character references: the named ones askama writes, and numeric ones
/// (askama writes `&` as `&#38;`). Anything else is left as it is.
pub fn html_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|e| *e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fields_and_entities() {
        let html = r#"<form><input type="hidden" name="csrf" value="a&#38;b&amp;c&#x3C;"></form>"#;
        assert_eq!(form_value(html, "csrf").as_deref(), Some("a&b&c<"));
        assert_eq!(form_value(html, "other"), None);
        assert_eq!(html_unescape("x &nope; &amp y"), "x &nope; &amp y");
    }
}
