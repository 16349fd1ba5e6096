//! A video call between a staff member and the visitor (SPEC §14). The
//! conversation relays signaling between exactly the two parties: the
//! dashboard socket that started the call and the visitor socket that
//! accepted it; nobody else's `call` or `signal` frames get through. One
//! call at a time per conversation. It rings every visitor tab for
//! `CALL_RING_TIMEOUT_SECS`, then is `missed`; a party whose socket drops
//! has `CALL_GRACE_SECS` to come back (a visitor socket of the conversation
//! that attaches meanwhile takes the call over and hears `resumed`), else
//! the call ends for both. When it ends the call is stored and the
//! transcript gets a line ("Video call, 3 min 12 s").

use super::*;
use crate::domain::Author;
use crate::outbound::ConnId;
use crate::protocol::{StaffFrame, error_code};
use crate::store::calls::{CallRecord, Participant};

/// How often a live call checks that the staff member's socket is open.
const STAFF_CHECK: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Ringing,
    Active,
}

pub(super) struct Call {
    id: Uuid,
    staff: Outbound,
    author: Author,
    /// The visitor socket that accepted (while active).
    visitor: Option<ConnId>,
    stage: Stage,
    created_at: DateTime<Utc>,
    answered_at: Option<DateTime<Utc>>,
    /// Since when a party's socket is gone (the grace runs from then).
    party_gone_since: Option<Instant>,
    quality: Option<serde_json::Value>,
    ring_timer: Option<SpawnHandle>,
    staff_check: Option<SpawnHandle>,
}

/// What staff do with a call, from their dashboard socket.
pub enum StaffCallCommand {
    Start { call_id: Uuid, staff: Outbound, author: Author },
    /// `from`: the dashboard socket that sent it (refused unless it started the call).
    Hangup { from: Outbound, call_id: Uuid, quality: Option<serde_json::Value> },
    Signal { from: Outbound, call_id: Uuid, data: serde_json::Value },
}

/// What the visitor does with a call, from one of their sockets.
pub enum VisitorCallCommand {
    /// `accept`, `decline`, `hangup` or `failed`.
    Action { conn: ConnId, call_id: Uuid, action: String, reason: Option<String>, quality: Option<serde_json::Value> },
    Signal { conn: ConnId, call_id: Uuid, data: serde_json::Value },
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct StaffCall(pub StaffCallCommand);

#[derive(Message)]
#[rtype(result = "()")]
pub struct VisitorCall(pub VisitorCallCommand);

/// Longest reason kept (`failed`), in characters.
const MAX_REASON_CHARS: usize = 200;

impl Handler<StaffCall> for ChatSession {
    type Result = ();

    fn handle(&mut self, StaffCall(command): StaffCall, ctx: &mut Context<Self>) {
        self.touch();
        match command {
            StaffCallCommand::Start { call_id, staff, author } => self.start_call(call_id, staff, author, ctx),
            StaffCallCommand::Hangup { from, call_id, quality } => {
                let Some(call) = self.call.as_mut().filter(|c| c.id == call_id && c.staff.id == from.id) else {
                    return self.refuse_staff(&from, call_id);
                };
                call.quality = quality.or(call.quality.take());
                let status = if call.stage == Stage::Ringing { "cancelled" } else { "ended" };
                self.end_call(status, Some("hung up by staff"), ctx);
            }
            StaffCallCommand::Signal { from, call_id, data } => {
                let Some(call) = self.call.as_ref().filter(|c| c.id == call_id && c.staff.id == from.id && c.stage == Stage::Active) else {
                    return self.refuse_staff(&from, call_id);
                };
                let frame = ServerFrame::Signal { call_id, data: &data }.encode();
                if let Some(visitor) = self.visitors.iter().find(|v| Some(v.id) == call.visitor) {
                    visitor.send(frame);
                }
            }
        }
    }
}

impl Handler<VisitorCall> for ChatSession {
    type Result = ();

    fn handle(&mut self, VisitorCall(command): VisitorCall, ctx: &mut Context<Self>) {
        self.touch();
        match command {
            VisitorCallCommand::Action { conn, call_id, action, reason, quality } => self.visitor_action(conn, call_id, &action, reason, quality, ctx),
            VisitorCallCommand::Signal { conn, call_id, data } => {
                let Some(call) = self.call.as_ref().filter(|c| c.id == call_id && c.visitor == Some(conn) && c.stage == Stage::Active) else {
                    return self.refuse_visitor(conn, "not a call of this socket");
                };
                call.staff.send(StaffFrame::Signal { session_id: self.id, call_id, data: &data }.encode());
            }
        }
    }
}

impl ChatSession {
    fn start_call(&mut self, call_id: Uuid, staff: Outbound, author: Author, ctx: &mut Context<Self>) {
        let refuse = |why: &str| StaffFrame::error(self.id, error_code::CALL_REFUSED, why, None);
        if !matches!(self.channel, Channel::Web | Channel::Test) {
            staff.send(refuse("video calls are for web chats"));
            return;
        }
        if self.call.is_some() {
            staff.send(refuse("a call is already running in this conversation"));
            return;
        }
        if self.visitors.is_empty() {
            staff.send(refuse("the visitor is not online"));
            return;
        }
        let ring = ServerFrame::Call { call_id, action: "ring", from: Some(&author.name) }.encode();
        for visitor in &self.visitors {
            visitor.send(ring.clone());
        }
        staff.send(StaffFrame::Call { session_id: self.id, call_id, action: "ringing", reason: None }.encode());
        let ring_for = Duration::from_secs(self.hub.config.calls.ring_timeout_secs.max(1));
        let ring_timer = ctx.run_later(ring_for, move |actor, ctx| {
            if actor.call.as_ref().is_some_and(|c| c.id == call_id && c.stage == Stage::Ringing) {
                actor.end_call("missed", Some("no answer"), ctx);
            }
        });
        let staff_check = ctx.run_interval(STAFF_CHECK, |actor, ctx| actor.check_staff(ctx));
        self.call = Some(Call {
            id: call_id,
            staff,
            author,
            visitor: None,
            stage: Stage::Ringing,
            created_at: Utc::now(),
            answered_at: None,
            party_gone_since: None,
            quality: None,
            ring_timer: Some(ring_timer),
            staff_check: Some(staff_check),
        });
        metrics::counter!("chathub_calls_started_total").increment(1);
    }

    fn visitor_action(&mut self, conn: ConnId, call_id: Uuid, action: &str, reason: Option<String>, quality: Option<serde_json::Value>, ctx: &mut Context<Self>) {
        let Some(call) = self.call.as_mut().filter(|c| c.id == call_id) else {
            return self.refuse_visitor(conn, "no such call");
        };
        match (action, call.stage) {
            ("accept", Stage::Ringing) => {
                call.stage = Stage::Active;
                call.visitor = Some(conn);
                call.answered_at = Some(Utc::now());
                if let Some(timer) = call.ring_timer.take() {
                    ctx.cancel_future(timer);
                }
                call.staff.send(StaffFrame::Call { session_id: self.id, call_id, action: "accepted", reason: None }.encode());
                // The visitor's other tabs stop ringing.
                let ended = ServerFrame::Call { call_id, action: "ended", from: None }.encode();
                for other in self.visitors.iter().filter(|v| v.id != conn) {
                    other.send(ended.clone());
                }
            }
            ("decline", Stage::Ringing) => self.end_call("declined", Some("declined by the visitor"), ctx),
            ("hangup", Stage::Active) if call.visitor == Some(conn) => {
                call.quality = quality.or(call.quality.take());
                self.end_call("ended", Some("hung up by the visitor"), ctx);
            }
            ("failed", _) if call.visitor.is_none_or(|v| v == conn) => {
                let reason: String = reason.unwrap_or_else(|| "the call failed".into()).chars().filter(|c| !c.is_control()).take(MAX_REASON_CHARS).collect();
                self.end_call("failed", Some(&reason), ctx);
            }
            _ => self.refuse_visitor(conn, "this call cannot do that now"),
        }
    }

    fn refuse_staff(&self, from: &Outbound, call_id: Uuid) {
        let why = format!("call {call_id} is not yours, not active, or over");
        from.send(StaffFrame::error(self.id, error_code::CALL_REFUSED, &why, None));
    }

    fn refuse_visitor(&self, conn: ConnId, why: &str) {
        if let Some(visitor) = self.visitors.iter().find(|v| v.id == conn) {
            visitor.send(crate::protocol::error_frame(error_code::CALL_REFUSED, why, None));
        }
    }

    /// A visitor socket closed: the call's own socket gets the grace period.
    pub(super) fn call_visitor_gone(&mut self, conn: ConnId, ctx: &mut Context<Self>) {
        let Some(call) = self.call.as_mut().filter(|c| c.visitor == Some(conn)) else { return };
        call.visitor = None;
        call.party_gone_since = Some(Instant::now());
        let call_id = call.id;
        ctx.run_later(self.call_grace(), move |actor, ctx| {
            if actor.call.as_ref().is_some_and(|c| c.id == call_id && c.stage == Stage::Active && c.visitor.is_none()) {
                actor.end_call("ended", Some("the visitor's connection dropped"), ctx);
            }
        });
    }

    /// A visitor socket attached: it rings if a call is ringing, or takes
    /// over an active call whose visitor socket dropped.
    pub(super) fn call_visitor_back(&mut self, outbound: &Outbound) {
        let session_id = self.id;
        let Some(call) = self.call.as_mut() else { return };
        match call.stage {
            Stage::Ringing => {
                outbound.send(ServerFrame::Call { call_id: call.id, action: "ring", from: Some(&call.author.name) }.encode());
            }
            Stage::Active if call.visitor.is_none() => {
                call.visitor = Some(outbound.id);
                call.party_gone_since = None;
                outbound.send(ServerFrame::Call { call_id: call.id, action: "resumed", from: Some(&call.author.name) }.encode());
                call.staff.send(StaffFrame::Call { session_id, call_id: call.id, action: "resumed", reason: None }.encode());
            }
            Stage::Active => {}
        }
    }

    fn call_grace(&self) -> Duration {
        Duration::from_secs(self.hub.config.calls.grace_secs.max(1))
    }

    /// The staff member's socket closed: after the grace the call ends.
    fn check_staff(&mut self, ctx: &mut Context<Self>) {
        let grace = self.call_grace();
        let Some(call) = self.call.as_mut() else { return };
        if !call.staff.is_gone() {
            return;
        }
        let since = *call.party_gone_since.get_or_insert_with(Instant::now);
        let status = if call.stage == Stage::Ringing { "cancelled" } else { "ended" };
        if since.elapsed() >= grace {
            self.end_call(status, Some("the staff member's connection dropped"), ctx);
        }
    }

    /// Ends the call: both sides hear it, the call is stored, the
    /// transcript gets its line.
    fn end_call(&mut self, status: &'static str, reason: Option<&str>, ctx: &mut Context<Self>) {
        let Some(mut call) = self.call.take() else { return };
        for timer in [call.ring_timer.take(), call.staff_check.take()].into_iter().flatten() {
            ctx.cancel_future(timer);
        }
        let staff_action = if status == "cancelled" { "ended" } else { status };
        call.staff.send(StaffFrame::Call { session_id: self.id, call_id: call.id, action: staff_action, reason }.encode());
        let visitor_action = if status == "missed" { "missed" } else { "ended" };
        let frame = ServerFrame::Call { call_id: call.id, action: visitor_action, from: None }.encode();
        for visitor in &self.visitors {
            visitor.send(frame.clone());
        }
        let ended_at = Utc::now();
        // The caller's client says whether they ended muted or with the camera off.
        let flag = |name: &str| call.quality.as_ref().and_then(|q| q.get(name)).and_then(|v| v.as_bool()).unwrap_or(false);
        let (staff_muted, staff_video_off) = (flag("muted"), flag("video_off"));
        let duration_secs = call.answered_at.map_or(0, |at| (ended_at - at).num_seconds().max(0) as i32);
        let record = CallRecord {
            id: call.id,
            session_id: self.id.0,
            status: status.to_owned(),
            started_by: Some(call.author.id),
            started_by_name: call.author.name.clone(),
            created_at: call.created_at,
            answered_at: call.answered_at,
            ended_at,
            duration_secs,
            end_reason: reason.map(str::to_owned),
            quality: call.quality.take(),
            participants: vec![
                Participant {
                    role: "staff".into(),
                    user_id: Some(call.author.id),
                    joined_at: Some(call.created_at),
                    left_at: Some(ended_at),
                    muted: staff_muted,
                    video_off: staff_video_off,
                },
                Participant { role: "visitor".into(), user_id: None, joined_at: call.answered_at, left_at: call.answered_at.map(|_| ended_at), muted: false, video_off: false },
            ],
        };
        let db = self.hub.db.clone();
        actix::spawn(async move {
            if let Err(e) = crate::store::calls::insert(&db, &record).await {
                tracing::warn!(call = %record.id, error = %e, "could not store a call");
            }
        });
        metrics::counter!("chathub_calls_ended_total", "status" => status).increment(1);
        let line = match status {
            "ended" => format!("Video call, {}", call_length(duration_secs)),
            "declined" => "Video call declined".to_owned(),
            "missed" => "Missed video call".to_owned(),
            "cancelled" => "Video call cancelled".to_owned(),
            _ => format!("Video call failed: {}", reason.unwrap_or("unknown reason")),
        };
        self.enqueue_reply(MessageRole::System, line, Origin::System, SessionPatch::default(), ctx);
    }
}

/// "3 min 12 s", "45 s".
fn call_length(secs: i32) -> String {
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s} s"),
        (m, s) => format!("{m} min {s} s"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn call_lengths_read_as_minutes_and_seconds() {
        assert_eq!(super::call_length(192), "3 min 12 s");
        assert_eq!(super::call_length(45), "45 s");
    }
}
