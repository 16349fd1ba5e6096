//! Resend `POST {RESEND_API_URL}/emails`, with an HTML and a plain-text
//! body and an `Idempotency-Key` derived from the event, so a retry never
//! sends a second email:
//! - `qa.issue` → `QA_ALERT_EMAILS`; every value from a conversation is
//!   HTML-escaped (chat text is hostile).
//! - `email.send` → the lead: the email as rendered when it was queued
//!   (`email::render`), tagged `chathub_email_id` so Resend's webhook events
//!   find it again; Resend's id for it comes back as the receipt.

use serde_json::{Value, json};

use super::{Job, Outcome, classify, transport_error};
use crate::config::Config;
use crate::email::render::escape_html;
use crate::postgres::Db;

/// Messages quoted at the end of the email.
const QUOTED_MESSAGES: usize = 10;

/// The subject, HTML and text bodies of a QA alert.
pub fn render(payload: &Value, session_link: &str, last_messages: &[(String, String)]) -> (String, String, String) {
    let field = |path: &str| payload.pointer(path).and_then(Value::as_str).unwrap_or("").to_owned();
    let customer = [field("/customer/name"), field("/customer/email"), field("/customer/phone")]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" · ");
    let customer = if customer.is_empty() { "unknown visitor".to_owned() } else { customer };
    let notes = field("/qa_notes");
    let by = field("/flagged_by");
    let subject = format!("QA issue flagged by {by}: {}", customer.chars().take(80).collect::<String>());
    let mut text = format!(
        "A conversation was flagged with a QA issue.\n\nCustomer: {customer}\nFlagged by: {by}\nNotes: {notes}\nOpen it: {session_link}\n\nLast messages:\n"
    );
    let mut rows = String::new();
    for (role, body) in last_messages {
        text.push_str(&format!("[{role}] {body}\n"));
        rows.push_str(&format!(
            "<tr><td style=\"padding:4px 8px;color:#666;vertical-align:top\">{}</td><td style=\"padding:4px 8px;white-space:pre-wrap\">{}</td></tr>",
            escape_html(role),
            escape_html(body)
        ));
    }
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><h2>QA issue</h2>\
         <p><strong>Customer:</strong> {}</p><p><strong>Flagged by:</strong> {}</p>\
         <p><strong>Notes:</strong></p><blockquote style=\"white-space:pre-wrap\">{}</blockquote>\
         <p><a href=\"{}\">Open the conversation</a></p><h3>Last messages</h3><table>{}</table></body></html>",
        escape_html(&customer),
        escape_html(&by),
        escape_html(&notes),
        escape_html(session_link),
        rows
    );
    (subject, html, text)
}

pub async fn deliver(http: &reqwest::Client, config: &Config, db: &Db, job: &Job) -> Outcome {
    let Some(key) = &config.resend_api_key else { return super::skipped(config, job) };
    let recipients = config.qa_alert_recipients();
    if recipients.is_empty() {
        return super::skipped(config, job);
    }
    let mut last = Vec::new();
    if let Some(id) = job.session_id {
        match super::transcript(db, id).await {
            Ok(messages) => {
                let skip = messages.len().saturating_sub(QUOTED_MESSAGES);
                last = messages.into_iter().skip(skip).map(|m| (m.role.to_string(), m.text)).collect();
            }
            Err(e) => return Outcome::Retry { status: None, error: format!("reading the transcript: {e}"), retry_after: None },
        }
    }
    let link = format!(
        "{}/#/sessions/{}",
        config.public_url.trim_end_matches('/'),
        job.session_id.map(|s| s.to_string()).unwrap_or_default()
    );
    let (subject, html, text) = render(&job.payload, &link, &last);
    let email = json!({ "from": config.email_from, "to": recipients, "subject": subject, "html": html, "text": text });
    post(http, config, key, job, &email).await
}

/// `ai.alert` to the QA alert recipients: which AI-health threshold was
/// crossed, by how much, with a link to the dashboard.
pub async fn send_ai_alert(http: &reqwest::Client, config: &Config, job: &Job) -> Outcome {
    let Some(key) = &config.resend_api_key else { return super::skipped(config, job) };
    let recipients = config.qa_alert_recipients();
    if recipients.is_empty() {
        return super::skipped(config, job);
    }
    let p = &job.payload;
    let (metric, value, max, minutes) = (p["metric"].as_str().unwrap_or("?"), &p["value"], &p["max"], &p["minutes"]);
    let subject = format!("chathub: AI alert, {metric} is {value} (over {max} in {minutes} min)");
    let link = format!("{}/#/sessions", config.public_url.trim_end_matches('/'));
    let text = format!("The AI's {metric} reached {value} over the last {minutes} minutes; the alert threshold is {max}.\n\nOpen the dashboard: {link}\n");
    let html = format!("<p>{}</p><p><a href=\"{}\">Open the dashboard</a></p>", crate::email::render::escape_html(&text.lines().next().unwrap_or_default()), crate::email::render::escape_html(&link));
    let email = json!({ "from": config.email_from, "to": recipients, "subject": subject, "html": html, "text": text });
    post(http, config, key, job, &email).await
}

pub async fn send_lead_email(http: &reqwest::Client, config: &Config, db: &Db, job: &Job) -> Outcome {
    let Some(key) = &config.resend_api_key else { return super::skipped(config, job) };
    let Some(id) = super::email_id(job) else {
        return Outcome::Permanent { status: None, error: "the event names no email".into() };
    };
    let outgoing = match crate::store::emails::outgoing(db, id).await {
        Ok(Some(outgoing)) => outgoing,
        Ok(None) => return Outcome::Permanent { status: None, error: "the email was deleted with its session".into() },
        Err(e) => return Outcome::Retry { status: None, error: format!("reading the email: {e}"), retry_after: None },
    };
    let email = json!({
        "from": outgoing.from,
        "to": [outgoing.to],
        "subject": outgoing.subject,
        "html": outgoing.html,
        "text": outgoing.text,
        "tags": [{ "name": crate::email::EMAIL_ID_TAG, "value": id.to_string() }],
    });
    post(http, config, key, job, &email).await
}

/// One `POST /emails`; a success's `id` is the receipt.
async fn post(http: &reqwest::Client, config: &Config, key: &str, job: &Job, email: &Value) -> Outcome {
    let request = http
        .post(format!("{}/emails", config.resend_api_url.trim_end_matches('/')))
        .bearer_auth(key)
        .header("Idempotency-Key", &job.idempotency_key)
        .json(email);
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return transport_error(e),
    };
    if !response.status().is_success() {
        return classify(response).await;
    }
    let status = response.status().as_u16();
    let receipt = response.json::<Value>().await.ok().and_then(|body| body.get("id").and_then(Value::as_str).map(str::to_owned));
    Outcome::Delivered { status, receipt }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_text_in_the_email_is_escaped() {
        let payload = json!({"customer": {"name": "<b>Eve</b>"}, "qa_notes": "a & b", "flagged_by": "quinn"});
        let (subject, html, text) = render(&payload, "https://hub/#/sessions/1", &[("visitor".into(), "<img src=x onerror=alert(1)>".into())]);
        assert!(subject.contains("quinn"));
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;") && !html.contains("<img"));
        assert!(html.contains("&lt;b&gt;Eve&lt;/b&gt;") && html.contains("a &amp; b"));
        assert!(text.contains("<img src=x onerror=alert(1)>"), "plain text stays literal");
    }
}
