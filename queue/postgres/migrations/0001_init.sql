-- The queue's first schema. Times are the database's clock (now()), so
-- that nodes whose clocks disagree still agree on what is due and which
-- leases ran out.

CREATE TABLE messages (
	id             text PRIMARY KEY,
	-- The queue.Envelope with its recipients and their state, as JSON.
	-- json rather than jsonb: jsonb refuses \u0000, which a remote
	-- server's reply quoted in an outcome may contain, and nothing
	-- queries inside it.
	envelope       json NOT NULL,
	size           bigint NOT NULL,
	created        timestamptz NOT NULL DEFAULT now(),
	attempts       integer NOT NULL DEFAULT 0,
	next_attempt   timestamptz NOT NULL DEFAULT now(),
	delay_notified boolean NOT NULL DEFAULT false,
	-- The current claim; lease_token is NULL when nobody holds one.
	lease_token    text,
	lease_node     text,
	lease_expires  timestamptz
);

-- Claim walks due entries oldest first.
CREATE INDEX messages_due ON messages (next_attempt, id);

CREATE TABLE bodies (
	id   text PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
	body bytea NOT NULL
);
-- Uncompressed out-of-line storage, so that substring() reads only the
-- TOAST chunks it needs and Body can stream a large body in pieces.
ALTER TABLE bodies ALTER COLUMN body SET STORAGE EXTERNAL;

-- Per-destination connection slots shared by the nodes (Queue.Acquire).
CREATE TABLE dest_slots (
	dest    text NOT NULL,
	slot    integer NOT NULL,
	node    text NOT NULL,
	token   text NOT NULL,
	expires timestamptz NOT NULL,
	PRIMARY KEY (dest, slot)
);
