//! The AI agent interface and its three backends, chosen by `AGENT`:
//! `demo` (built-in scripted lead generation, offline, deterministic),
//! `webhook` (POST to an n8n-style flow) and `openai` (any OpenAI-compatible
//! chat-completions endpoint, streamed). The conversation actor calls
//! `Agent::reply` off its own thread of control and applies a timeout, so a
//! slow agent never blocks other conversations.

mod demo;
mod openai;
mod webhook;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::domain::{Channel, Customer, MessageRole, SessionId};

pub use demo::DemoAgent;
pub use openai::OpenAiAgent;
pub use webhook::WebhookAgent;

/// Messages of history sent to an agent with each request.
pub const HISTORY_LEN: usize = 20;

/// One earlier message, as agents see it.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryItem {
    pub role: MessageRole,
    pub text: String,
}

/// What an agent is asked to answer.
#[derive(Debug, Clone)]
pub struct AgentRequest {
    pub session_id: SessionId,
    pub channel: Channel,
    /// The visitor's newest message.
    pub message: String,
    /// Recent history, oldest first, ending with `message`.
    pub history: Vec<HistoryItem>,
    pub customer: Customer,
    /// Where a streaming agent reports the answer so far (best effort).
    pub partials: Option<mpsc::Sender<String>>,
}

/// An agent's answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentReply {
    pub text: String,
    /// Contact details the agent learned (lead capture).
    pub customer: Option<Customer>,
    /// The visitor should be handed to a human.
    pub escalate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the agent did not answer within {0} s")]
    Timeout(u64),
    #[error("the agent request failed: {0}")]
    Transport(String),
    #[error("the agent answered with HTTP {0}")]
    Status(u16),
    #[error("the agent's answer could not be understood: {0}")]
    BadResponse(String),
}

pub trait Agent: Send + Sync {
    /// The backend's name, for logs and error rows.
    fn name(&self) -> &'static str;
    fn reply(&self, request: AgentRequest) -> BoxFuture<'static, Result<AgentReply, AgentError>>;
    /// The answer at once, for an agent that needs no I/O to give it (the
    /// demo agent); `None`: ask `reply`. The conversation then stores it in
    /// the same transaction as the message it answers.
    fn answer_now(&self, _request: &AgentRequest) -> Option<AgentReply> {
        None
    }
}

/// Builds the agent `AGENT` names.
pub fn from_config(config: &Config) -> anyhow::Result<Arc<dyn Agent>> {
    let timeout = std::time::Duration::from_secs(config.limits.agent_timeout_secs);
    Ok(match config.agent.as_str() {
        "demo" => Arc::new(DemoAgent::new(config.booking_url.clone())),
        "webhook" => {
            let url = config.agent_url.clone().ok_or_else(|| anyhow::anyhow!("AGENT=webhook needs AGENT_URL"))?;
            Arc::new(WebhookAgent::new(url, timeout)?)
        }
        "openai" => Arc::new(OpenAiAgent::new(
            config.openai_base_url.clone(),
            config.openai_api_key.clone(),
            config.openai_model.clone(),
            timeout,
        )?),
        other => anyhow::bail!("unknown AGENT {other:?}: expected demo, webhook or openai"),
    })
}

/// The HTTP client agents share: bounded timeouts, no redirects to elsewhere.
fn http_client(timeout: std::time::Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// A request to an agent that failed; past the client's timeout (the
/// agent's `AGENT_TIMEOUT_SECS`, see `http_client`) it is a timeout.
fn request_error(e: reqwest::Error, timeout: std::time::Duration) -> AgentError {
    if e.is_timeout() { AgentError::Timeout(timeout.as_secs()) } else { AgentError::Transport(e.to_string()) }
}
