-- Staff may have an email address (optional; shown to admins).
ALTER TABLE users ADD COLUMN email text;
