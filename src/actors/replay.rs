//! Replaying conversations (SPEC §16): each session's visitor messages, in
//! order, sent to the agent configured now, with the replayed answers as
//! the history, in a sandbox: a fresh conversation id for the agent, no
//! message stored, nothing sent to a visitor, a channel or the outbox.
//! Agent calls of all replays together are bounded (`REPLAY_CALLS`), so a
//! big replay waits behind live chats instead of crowding them out. A turn
//! whose agent call fails is marked failed with the reason; the replay
//! goes on.

use std::sync::Arc;

use serde::Serialize;
use serde_json::json;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::hub::Hub;
use crate::agents::{AgentRequest, HISTORY_LEN, HistoryItem};
use crate::domain::{Customer, MessageRole, SessionId};
use crate::protocol::StaffFrame;
use crate::store;

/// Agent calls all running replays may make at once.
static REPLAY_CALLS: Semaphore = Semaphore::const_new(2);
/// Most messages of one session replayed.
const MAX_MESSAGES: i64 = 2000;

/// One visitor message and the two answers to it.
#[derive(Debug, Serialize)]
pub struct Turn {
    pub visitor: String,
    /// What the AI answered then (`null`: staff or nobody did).
    pub original: Option<String>,
    /// What the agent answers now (`null` when the call failed).
    pub replayed: Option<String>,
    /// The two texts are equal after trimming whitespace.
    pub same: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    turns: usize,
    same: usize,
    changed: usize,
    failed: usize,
}

/// Runs replay `id` over `sessions` in the background.
pub fn start(hub: Arc<Hub>, id: Uuid, sessions: Vec<Uuid>) {
    tokio::spawn(async move {
        let mut done = Vec::new();
        let mut summary = Summary::default();
        for session in sessions {
            let turns = match replay_session(&hub, session).await {
                Ok(turns) => turns,
                Err(e) => {
                    tracing::warn!(replay = %id, %session, error = %e, "could not read a session to replay");
                    Vec::new()
                }
            };
            for turn in &turns {
                summary.turns += 1;
                match (&turn.error, turn.same) {
                    (Some(_), _) => summary.failed += 1,
                    (None, true) => summary.same += 1,
                    (None, false) => summary.changed += 1,
                }
            }
            done.push(json!({ "session_id": session, "turns": turns }));
            let result = json!({ "sessions": done, "summary": summary });
            if let Err(e) = store::replays::save(&hub.db, id, &result, None).await {
                tracing::warn!(replay = %id, error = %e, "could not store a replay's progress");
            }
            progress(&hub, id, "running", &summary);
        }
        let result = json!({ "sessions": done, "summary": summary });
        if let Err(e) = store::replays::save(&hub.db, id, &result, Some("done")).await {
            tracing::warn!(replay = %id, error = %e, "could not store a finished replay");
        }
        progress(&hub, id, "done", &summary);
    });
}

fn progress(hub: &Hub, id: Uuid, status: &str, summary: &Summary) {
    let summary = serde_json::to_value(summary).expect("a summary serialises");
    hub.supervisor.to_all_dashboards(StaffFrame::Replay { id, status, summary: &summary }.encode());
}

async fn replay_session(hub: &Hub, session: Uuid) -> Result<Vec<Turn>, store::StoreError> {
    let messages = store::sessions::messages(&hub.db, session, 0, MAX_MESSAGES).await?;
    let channel = store::conversations::channel_of(&hub.db, session).await?;
    let sandbox = SessionId::new();
    let mut customer = Customer::default();
    let mut history: Vec<HistoryItem> = Vec::new();
    let mut turns = Vec::new();
    for (i, message) in messages.iter().enumerate().filter(|(_, m)| m.role == MessageRole::Visitor) {
        let original: Vec<&str> =
            messages[i + 1..].iter().take_while(|m| m.role != MessageRole::Visitor).filter(|m| m.role == MessageRole::Ai).map(|m| m.text.as_str()).collect();
        let original = (!original.is_empty()).then(|| original.join("\n"));
        history.push(HistoryItem { role: MessageRole::Visitor, text: message.text.clone() });
        let request = AgentRequest {
            session_id: sandbox,
            channel,
            message: message.text.clone(),
            history: history.iter().rev().take(HISTORY_LEN).rev().cloned().collect(),
            customer: customer.clone(),
            partials: None,
        };
        let answer = {
            let _call = REPLAY_CALLS.acquire().await.expect("the replay semaphore is never closed");
            hub.agent.reply(request).await
        };
        let turn = match answer {
            Ok(reply) => {
                if let Some(learned) = reply.customer {
                    customer.merge(learned);
                }
                history.push(HistoryItem { role: MessageRole::Ai, text: reply.text.clone() });
                let same = original.as_deref().is_some_and(|o| o.trim() == reply.text.trim());
                Turn { visitor: message.text.clone(), original, replayed: Some(reply.text), same, error: None }
            }
            Err(e) => Turn { visitor: message.text.clone(), original, replayed: None, same: false, error: Some(e.to_string()) },
        };
        turns.push(turn);
    }
    Ok(turns)
}
