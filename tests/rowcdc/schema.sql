-- The tables both databases get (production's and the sister's), for the row CDC tests.
-- Each row carries `version`, kept by the writers: 1 on insert, +1 per update. REPLICA
-- IDENTITY FULL puts the whole old row, its version too, in the `before` of an update or
-- a delete, so a delete can be keyed by the version it removed.

CREATE TABLE public.comments (
    id bigint PRIMARY KEY,
    version bigint NOT NULL,
    body text NOT NULL,
    note text,                      -- NULL and '' are different values
    score numeric(12, 2) NOT NULL,  -- the column's scale: 12.5 is stored 12.50
    amount numeric NOT NULL,        -- no scale: 12.50 and 12.5 are stored as written
    ratio double precision NOT NULL,
    meta jsonb NOT NULL,            -- keeps a number's text: 3.0 and 3 stay apart
    tags text[] NOT NULL,
    blob bytea NOT NULL,
    uid uuid NOT NULL,
    day date NOT NULL,
    edited_at timestamp(6) without time zone NOT NULL,  -- a UTC wall time, by convention
    created_at timestamptz NOT NULL
);
ALTER TABLE public.comments REPLICA IDENTITY FULL;

CREATE TABLE public.votes (
    comment_id bigint NOT NULL,
    user_id bigint NOT NULL,
    version bigint NOT NULL,
    value int NOT NULL,
    reason text,
    cast_at timestamptz NOT NULL,
    PRIMARY KEY (comment_id, user_id)
);
ALTER TABLE public.votes REPLICA IDENTITY FULL;
