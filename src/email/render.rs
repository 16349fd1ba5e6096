//! Templates → subject, HTML and plain text, with `minijinja`.
//!
//! Staff write a template as plain text with `{{customer_name}}`-style
//! variables (and, if they like, minijinja's `{% if %}`). One source makes
//! both parts of the email:
//! - **text**: rendered as is; values are inserted verbatim.
//! - **HTML**: the template's own text is HTML-escaped and its line breaks
//!   become `<br>` before it is compiled, then rendered with minijinja's HTML
//!   auto-escaping, so neither a template nor a value (a visitor's name is
//!   hostile) can inject markup; `http(s)://` links become `<a>` so Resend's
//!   click tracking sees them.
//!
//! Undefined variables are errors (strict mode) and templates run on a fuel
//! budget, so a template cannot loop for long.

use std::collections::{BTreeMap, BTreeSet};

use minijinja::{AutoEscape, Environment, UndefinedBehavior};

/// Longest subject (after rendering; longer ones are cut).
pub const MAX_SUBJECT_CHARS: usize = 200;
/// Longest template body, and longest rendered body.
pub const MAX_BODY_CHARS: usize = 20_000;
/// Instructions a render may take (minijinja's fuel).
const FUEL: u64 = 100_000;

/// A rendered email.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RenderError {
    /// The template does not parse (or fails while rendering).
    #[error("the template is not valid: {0}")]
    Syntax(String),
    /// Variables the template uses that have no value.
    #[error("no value for {}", .0.join(", "))]
    Missing(Vec<String>),
    #[error("the rendered email is longer than {MAX_BODY_CHARS} characters")]
    TooLong,
}

/// `escape`: HTML-escape every value (minijinja's own HTML escaping also
/// escapes `/`, which would break the links in a value).
fn environment(escape: bool) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    if escape {
        env.set_formatter(|out, _, value| {
            let text = if value.is_safe() { value.to_string() } else { escape_html(&value.to_string()) };
            out.write_str(&text).map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string()))
        });
    }
    env
}

/// Text as HTML text or attribute value.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn syntax(e: minijinja::Error) -> RenderError {
    RenderError::Syntax(e.to_string())
}

/// The variables `subject` and `body` use, sorted.
pub fn variables(subject: &str, body: &str) -> Result<Vec<String>, RenderError> {
    let env = environment(false);
    let mut names = BTreeSet::new();
    for source in [subject, body] {
        names.extend(env.template_from_str(source).map_err(syntax)?.undeclared_variables(false));
    }
    // The HTML form must compile to the same variables (a `}}` inside a
    // string literal could otherwise split a tag).
    let html = env.template_from_str(&html_source(body)).map_err(syntax)?.undeclared_variables(false);
    if !html.iter().all(|n| names.contains(n)) {
        return Err(RenderError::Syntax("a tag could not be told apart from the text around it".into()));
    }
    // Functions such as `range` are not variables.
    for (global, _) in env.globals() {
        names.remove(global);
    }
    Ok(names.into_iter().collect())
}

/// Renders with `values`; every variable used needs a non-blank value.
pub fn render(subject: &str, body: &str, values: &BTreeMap<String, String>) -> Result<Rendered, RenderError> {
    let used = variables(subject, body)?;
    let missing: Vec<String> = used.into_iter().filter(|v| values.get(v).is_none_or(|value| value.trim().is_empty())).collect();
    if !missing.is_empty() {
        return Err(RenderError::Missing(missing));
    }
    let text_env = environment(false);
    let subject = text_env.render_str(subject, values).map_err(syntax)?;
    let subject: String = subject.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(MAX_SUBJECT_CHARS).collect();
    let text = text_env.render_str(body, values).map_err(syntax)?;
    let html_body = environment(true).render_str(&html_source(body), values).map_err(syntax)?;
    if text.chars().count() > MAX_BODY_CHARS || html_body.len() > MAX_BODY_CHARS * 8 {
        return Err(RenderError::TooLong);
    }
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif;line-height:1.5;color:#222\"><div>{}</div></body></html>",
        link_urls(&html_body)
    );
    Ok(Rendered { subject, html, text })
}

/// The template with its own text HTML-escaped and line breaks as `<br>`;
/// tags (`{{ }}`, `{% %}`, `{# #}`) are left as they are.
fn html_source(source: &str) -> String {
    let mut out = String::with_capacity(source.len() + 64);
    let mut rest = source;
    loop {
        let next = ["{{", "{%", "{#"].iter().filter_map(|open| rest.find(open)).min();
        let Some(start) = next else {
            escape_text(rest, &mut out);
            return out;
        };
        escape_text(&rest[..start], &mut out);
        let close = match &rest[start..start + 2] {
            "{{" => "}}",
            "{%" => "%}",
            _ => "#}",
        };
        match rest[start + 2..].find(close) {
            Some(end) => {
                let end = start + 2 + end + 2;
                out.push_str(&rest[start..end]);
                rest = &rest[end..];
            }
            None => {
                // Unclosed: leave it to the parser to complain about.
                out.push_str(&rest[start..]);
                return out;
            }
        }
    }
}

fn escape_text(text: &str, out: &mut String) {
    out.push_str(&escape_html(&text.replace('\r', "")).replace('\n', "<br>\n"));
}

/// Wraps `http(s)://…` runs of already-escaped HTML in `<a href>`. A link
/// ends at whitespace, a tag, or an escaped quote or bracket; trailing
/// punctuation stays outside it.
fn link_urls(html: &str) -> String {
    let mut out = String::with_capacity(html.len() + 64);
    let mut rest = html;
    while let Some(start) = ["http://", "https://"].iter().filter_map(|p| rest.find(p)).min() {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let mut end = tail.find(|c: char| c.is_whitespace() || c == '<' || c == '>').unwrap_or(tail.len());
        for stop in ["&quot;", "&#39;", "&lt;", "&gt;"] {
            if let Some(i) = tail[..end].find(stop) {
                end = end.min(i);
            }
        }
        let url = tail[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')']);
        if url.len() <= "https://".len() {
            out.push_str(&tail[..end]);
        } else {
            out.push_str(&format!("<a href=\"{url}\">{url}</a>"));
            out.push_str(&tail[url.len()..end]);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn variables_are_found_in_subject_and_body() {
        let found = variables("Hi {{ customer_name }}", "Book: {{booking_url}}\n{% if extra %}{{ extra }}{% endif %}").unwrap();
        assert_eq!(found, ["booking_url", "customer_name", "extra"]);
        assert!(matches!(variables("{{ unclosed", ""), Err(RenderError::Syntax(_))));
    }

    #[test]
    fn values_are_escaped_in_html_and_verbatim_in_text() {
        let rendered = render(
            "Hello {{customer_name}}",
            "Dear {{customer_name}} & co,\n<b>see</b> {{booking_url}}.",
            &values(&[("customer_name", "<img src=x onerror=alert(1)>"), ("booking_url", "https://cal.example/book?a=1&b=\"2\"")]),
        )
        .unwrap();
        assert_eq!(rendered.subject, "Hello <img src=x onerror=alert(1)>");
        assert!(rendered.text.starts_with("Dear <img src=x onerror=alert(1)> & co,\n<b>see</b> https://cal.example"));
        let html = &rendered.html;
        assert!(!html.contains("<img") && html.contains("&lt;img src=x onerror=alert(1)&gt;"), "{html}");
        assert!(html.contains("&amp; co,<br>") && html.contains("&lt;b&gt;see&lt;/b&gt;"), "{html}");
        assert!(html.contains("<a href=\"https://cal.example/book?a=1&amp;b=\">https://cal.example/book?a=1&amp;b=</a>&quot;2&quot;."), "{html}");
    }

    #[test]
    fn missing_values_are_named() {
        let err = render("{{a}}", "{{b}} {{customer_name}}", &values(&[("customer_name", "Ada"), ("b", "  ")])).unwrap_err();
        assert_eq!(err, RenderError::Missing(vec!["a".into(), "b".into()]));
    }

    #[test]
    fn a_runaway_template_runs_out_of_fuel() {
        let err = render("x", "{% for i in range(100000) %}{% for j in range(100000) %}.{% endfor %}{% endfor %}", &values(&[])).unwrap_err();
        assert!(matches!(&err, RenderError::Syntax(m) if m.contains("fuel")), "{err:?}");
    }

    #[test]
    fn links_end_before_punctuation() {
        assert_eq!(link_urls("go to https://a.example/x). now"), "go to <a href=\"https://a.example/x\">https://a.example/x</a>). now");
        assert_eq!(link_urls("https:// alone"), "https:// alone");
    }
}
