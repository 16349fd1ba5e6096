//! The OpenAI-compatible agent: `POST {OPENAI_BASE_URL}/chat/completions`
//! with `stream: true` (OpenAI, Ollama, vLLM, llama.cpp all speak it). Tokens
//! arrive as server-sent events; the answer so far is reported through
//! `AgentRequest::partials` while the visitor sees the typing indicator, and
//! the whole answer becomes one message.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::{BoxFuture, FutureExt};
use serde_json::{Value, json};

use super::{Agent, AgentError, AgentReply, AgentRequest};
use crate::domain::MessageRole;

/// The system prompt that frames every conversation.
const SYSTEM_PROMPT: &str = "You are a friendly assistant on a business website. Answer briefly. \
Help the visitor, and ask for their name and email address so the team can follow up.";
/// Longest SSE line accepted (guards memory against a broken endpoint).
const MAX_SSE_LINE_BYTES: usize = 1 << 20;
/// Longest answer accepted.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

pub struct OpenAiAgent {
    endpoint: String,
    api_key: Option<String>,
    model: String,
    http: reqwest::Client,
    timeout: Duration,
}

impl OpenAiAgent {
    pub fn new(base_url: String, api_key: Option<String>, model: String, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            endpoint: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            api_key,
            model,
            http: super::http_client(timeout)?,
            timeout,
        })
    }
}

impl Agent for OpenAiAgent {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn reply(&self, request: AgentRequest) -> BoxFuture<'static, Result<AgentReply, AgentError>> {
        let mut messages = vec![json!({"role": "system", "content": SYSTEM_PROMPT})];
        messages.extend(request.history.iter().map(|m| {
            let role = match m.role {
                MessageRole::Visitor => "user",
                MessageRole::Ai | MessageRole::Agent => "assistant",
                MessageRole::System => "system",
            };
            json!({"role": role, "content": m.text})
        }));
        let body = json!({"model": self.model, "messages": messages, "stream": true});
        let mut call = self.http.post(&self.endpoint).json(&body);
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key);
        }
        let partials = request.partials;
        let timeout = self.timeout;
        async move {
            let response = call.send().await.map_err(|e| super::request_error(e, timeout))?;
            if !response.status().is_success() {
                return Err(AgentError::Status(response.status().as_u16()));
            }
            let mut answer = String::new();
            let mut line = Vec::new();
            let mut stream = response.bytes_stream();
            'read: while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| super::request_error(e, timeout))?;
                for &byte in chunk.iter() {
                    if byte != b'\n' {
                        line.push(byte);
                        if line.len() > MAX_SSE_LINE_BYTES {
                            return Err(AgentError::BadResponse("an event line is too long".into()));
                        }
                        continue;
                    }
                    let text = String::from_utf8_lossy(&line).trim().to_owned();
                    line.clear();
                    let Some(data) = text.strip_prefix("data:").map(str::trim) else { continue };
                    if data == "[DONE]" {
                        break 'read;
                    }
                    let event: Value = serde_json::from_str(data)
                        .map_err(|e| AgentError::BadResponse(format!("bad event JSON: {e}")))?;
                    if let Some(delta) = event["choices"][0]["delta"]["content"].as_str() {
                        answer.push_str(delta);
                        if answer.len() > MAX_ANSWER_BYTES {
                            return Err(AgentError::BadResponse("the answer is too long".into()));
                        }
                        if let Some(tx) = &partials {
                            // Best effort: a full queue just skips this update.
                            let _ = tx.try_send(answer.clone());
                        }
                    }
                }
            }
            let text = answer.trim();
            if text.is_empty() {
                return Err(AgentError::BadResponse("the stream held no content".into()));
            }
            Ok(AgentReply { text: text.to_owned(), ..Default::default() })
        }
        .boxed()
    }
}
