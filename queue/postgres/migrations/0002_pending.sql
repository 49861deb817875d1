-- The number of pending recipients of each entry, kept by Enqueue and
-- Record, so that Stats sums a column instead of parsing every envelope.
ALTER TABLE messages ADD COLUMN pending integer NOT NULL DEFAULT 0;

UPDATE messages SET pending = (
	SELECT count(*) FROM json_array_elements(envelope -> 'recipients') r
	WHERE r ->> 'status' = 'pending'
);
