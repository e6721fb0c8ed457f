//! XML-RPC strings keep their leading and trailing whitespace (`sendProcessStdin("web",
//! "ls\n")` must send the newline), but dxr's XML reader trims text. So before it reads a
//! call, whitespace at either edge of a `<string>` is written as character references, which
//! it unescapes after trimming.

/// `xml` with the edge whitespace of each `<string>` element's text as `&#N;` references.
pub fn keep_edges(xml: &str) -> String {
    const OPEN: &str = "<string>";
    const CLOSE: &str = "</string>";
    let mut out = String::with_capacity(xml.len() + 16);
    let mut rest = xml;
    while let Some(start) = rest.find(OPEN) {
        let body_at = start + OPEN.len();
        let Some(len) = rest[body_at..].find(CLOSE) else { break };
        out.push_str(&rest[..body_at]);
        let body = &rest[body_at..body_at + len];
        let inner = body.trim_matches(is_xml_space);
        let lead = &body[..body.len() - body.trim_start_matches(is_xml_space).len()];
        let trail = &body[body.trim_end_matches(is_xml_space).len()..];
        if inner.is_empty() {
            // All whitespace: every character is an edge.
            references(&mut out, body);
        } else {
            references(&mut out, lead);
            out.push_str(inner);
            references(&mut out, trail);
        }
        rest = &rest[body_at + len..];
    }
    out.push_str(rest);
    out
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

fn references(out: &mut String, spaces: &str) {
    for c in spaces.chars() {
        out.push_str(&format!("&#{};", u32::from(c)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_whitespace_survives_dxr() {
        let call = "<?xml version='1.0'?><methodCall><methodName>m</methodName><params>\
                    <param><value><string> ls -l\n</string></value></param>\
                    <param><value><string>\n</string></value></param>\
                    <param><value><string>a b</string></value></param></params></methodCall>";
        let parsed = dxr::MethodCall::from_xml(&keep_edges(call)).map(|c| c.params);
        let strings: Vec<String> = parsed
            .unwrap_or_default()
            .into_iter()
            .map(|v| match v {
                dxr::Value::String(s) => s,
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(strings, [" ls -l\n", "\n", "a b"]);
    }
}
