-- Relay message ids are the relaying bot's own: they are now stored scoped to
-- their conversation ('relay:<session id>:<id>'), so the same id in two
-- conversations is two messages and no relay id can occupy a Messenger mid or
-- WhatsApp wamid. Ids already stored by relayed conversations move to the new
-- form, so a repeated post of an old message is still recognised.
UPDATE messages m
SET external_id = 'relay:' || m.session_id || ':' || m.external_id
FROM sessions s
WHERE s.id = m.session_id
  AND s.metadata->>'source' = 'relay'
  AND m.external_id IS NOT NULL
  AND m.external_id NOT LIKE 'relay:%';
