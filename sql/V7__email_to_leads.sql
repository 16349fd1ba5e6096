-- Email to leads (SPEC §13): templates with variables, the emails sent from
-- a session and what Resend's webhook reported about each, the webhook
-- deliveries already applied (deduplicated by svix-id), and addresses that
-- bounced or complained (later sends warn).

ALTER TABLE sites ADD COLUMN email_from text;

CREATE TABLE email_templates (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    category    text NOT NULL CHECK (category IN ('general', 'follow_up', 'proposal', 'welcome', 'thank_you', 'reminder', 'promotion')),
    subject     text NOT NULL,
    body        text NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    usage_count integer NOT NULL DEFAULT 0,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE emails (
    id            uuid PRIMARY KEY,
    session_id    uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    template_id   uuid REFERENCES email_templates (id) ON DELETE SET NULL,
    to_address    text NOT NULL,
    from_address  text NOT NULL,
    subject       text NOT NULL,
    html          text NOT NULL,
    text          text NOT NULL,
    -- Forward only: queued → sent → delivered → opened → clicked, or
    -- bounced / complained; failed when the outbox gave up.
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'failed', 'sent', 'delivered', 'opened', 'clicked', 'bounced', 'complained')),
    provider_id   text UNIQUE,
    sent_by       text,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    delivered_at  timestamptz,
    opened_at     timestamptz,
    clicked_at    timestamptz,
    bounced_at    timestamptz,
    complained_at timestamptz,
    open_count    integer NOT NULL DEFAULT 0,
    click_count   integer NOT NULL DEFAULT 0,
    clicked_links text[] NOT NULL DEFAULT '{}'
);
CREATE INDEX emails_session_idx ON emails (session_id, created_at);
CREATE INDEX emails_template_idx ON emails (template_id) WHERE template_id IS NOT NULL;

-- Each Resend webhook delivery applied once (Svix retries reuse the id).
CREATE TABLE email_events (
    svix_id     text PRIMARY KEY,
    email_id    uuid REFERENCES emails (id) ON DELETE CASCADE,
    type        text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX email_events_received_idx ON email_events (received_at);

-- Addresses Resend reported as bounced or complained (lower-cased).
CREATE TABLE email_address_flags (
    address    text PRIMARY KEY,
    reason     text NOT NULL CHECK (reason IN ('bounced', 'complained')),
    flagged_at timestamptz NOT NULL DEFAULT now()
);

INSERT INTO email_templates (id, name, category, subject, body, created_by) VALUES
('00000000-0000-4000-8000-0000000000e1', 'First-contact follow-up', 'follow_up',
 'Following up on your chat with {{site_name}}',
 'Hi {{customer_name}},

Thank you for chatting with us today. I wanted to follow up personally in case you have any questions we did not get to.

You can pick a time that suits you here: {{booking_url}}

Best regards,
{{agent_name}}
{{site_name}}', NULL),
('00000000-0000-4000-8000-0000000000e2', 'Proposal sent', 'proposal',
 'Your proposal from {{site_name}}',
 'Hi {{customer_name}},

As promised, here is your proposal: {{proposal_url}}

It is valid until {{valid_until}}. Reply to this email or book a call if you would like to go through it together: {{booking_url}}

Best regards,
{{agent_name}}', NULL),
('00000000-0000-4000-8000-0000000000e3', 'Thank you for your first visit', 'thank_you',
 'Thank you for visiting {{site_name}}',
 'Hi {{customer_name}},

Thank you for your first visit. It was a pleasure to meet you.

If there is anything else we can do for you, just reply to this email.

Warm regards,
{{agent_name}}
{{site_name}}', NULL),
('00000000-0000-4000-8000-0000000000e4', 'Appointment reminder', 'reminder',
 'Reminder: your appointment on {{appointment_time}}',
 'Hi {{customer_name}},

This is a friendly reminder of your appointment with {{site_name}} on {{appointment_time}}.

Need to change it? Pick another time here: {{booking_url}}

See you soon,
{{agent_name}}', NULL);
