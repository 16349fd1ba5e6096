//! The webhook agent: POSTs the conversation to `AGENT_URL` (typically an n8n
//! "Webhook → AI Agent → Respond to Webhook" flow) and reads the answer.
//!
//! Request body:
//! `{"session_id","channel","message","history":[{"role","text"}],"customer":{"name","email","phone"}}`
//!
//! Accepted answers: a JSON object with the text in `reply`, `output` (n8n's
//! AI Agent node), `text` or `message`, optionally `"escalate": true` and a
//! `customer` object; or a one-element array of such an object (n8n's
//! "all incoming items"). Connection failures and 5xx are retried once.

use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt};
use serde_json::{Value, json};

use super::{Agent, AgentError, AgentReply, AgentRequest};
use crate::domain::Customer;

/// Pause before the single retry of a failed call.
const RETRY_DELAY: Duration = Duration::from_millis(300);

pub struct WebhookAgent {
    url: String,
    http: reqwest::Client,
    timeout: Duration,
}

impl WebhookAgent {
    pub fn new(url: String, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self { url, http: super::http_client(timeout)?, timeout })
    }
}

impl Agent for WebhookAgent {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn reply(&self, request: AgentRequest) -> BoxFuture<'static, Result<AgentReply, AgentError>> {
        let http = self.http.clone();
        let url = self.url.clone();
        let timeout = self.timeout;
        let body = json!({
            "session_id": request.session_id,
            "channel": request.channel,
            "message": request.message,
            "history": request.history,
            "customer": request.customer,
        });
        async move {
            let mut last_error = None;
            for attempt in 0..2 {
                if attempt > 0 {
                    tokio::time::sleep(RETRY_DELAY).await;
                }
                match http.post(&url).json(&body).send().await {
                    Ok(response) if response.status().is_success() => {
                        let value: Value =
                            response.json().await.map_err(|e| AgentError::BadResponse(e.to_string()))?;
                        return parse_reply(&value);
                    }
                    Ok(response) if response.status().is_server_error() => {
                        last_error = Some(AgentError::Status(response.status().as_u16()));
                    }
                    Ok(response) => return Err(AgentError::Status(response.status().as_u16())),
                    // A timeout is not tried again: the agent's time is up.
                    Err(e) => match super::request_error(e, timeout) {
                        timed_out @ AgentError::Timeout(_) => return Err(timed_out),
                        failed => last_error = Some(failed),
                    },
                }
            }
            Err(last_error.expect("at least one attempt"))
        }
        .boxed()
    }
}

fn parse_reply(value: &Value) -> Result<AgentReply, AgentError> {
    let object = match value {
        Value::Array(items) if items.len() == 1 => &items[0],
        other => other,
    };
    let text = ["reply", "output", "text", "message"]
        .iter()
        .find_map(|key| object.get(key).and_then(Value::as_str))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AgentError::BadResponse("no non-empty reply/output/text/message field".into()))?;
    let customer = object.get("customer").and_then(|c| {
        let field = |k: &str| c.get(k).and_then(Value::as_str);
        Customer::parse(field("name"), field("email"), field("phone")).ok()
    });
    Ok(AgentReply {
        text: text.to_owned(),
        customer,
        escalate: object.get("escalate").and_then(Value::as_bool).unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_read_from_the_usual_fields() {
        assert_eq!(parse_reply(&json!({"reply": "hi"})).unwrap().text, "hi");
        assert_eq!(parse_reply(&json!([{"output": "from n8n"}])).unwrap().text, "from n8n");
        let full = parse_reply(&json!({"text": "x", "escalate": true, "customer": {"email": "a@b.co"}})).unwrap();
        assert!(full.escalate);
        assert_eq!(full.customer.unwrap().email.as_deref(), Some("a@b.co"));
        assert!(parse_reply(&json!({"answer": "?"})).is_err());
        assert!(parse_reply(&json!({"reply": "  "})).is_err());
    }
}
