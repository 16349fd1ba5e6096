-- The name staff messages carry (the widget shows it instead of "Team");
-- NULL means the username.
ALTER TABLE users ADD COLUMN display_name text;
