package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// EntryID is the stream entry id a change gets: `<ts_ms>-0` (the Python legacy
// writer gives the production entry the same id, so both streams line up in time),
// or `*` with -ids auto.
func EntryID(c *Change, ids string) string {
	if ids == "auto" {
		return "*"
	}
	return strconv.FormatInt(c.TsMs, 10) + "-0"
}

// EntryFields are the stream entry's fields, in the order of docs/wire-format.md.
func EntryFields(c *Change, enc Encoding, payload []byte) []any {
	return []any{
		"event_id", c.EventID,
		"entity", c.Entity,
		"op", c.Op,
		"entity_id", c.EntityID,
		"version", strconv.FormatInt(c.Version, 10),
		"ts_ms", strconv.FormatInt(c.TsMs, 10),
		"encoding", string(enc),
		"payload", payload,
	}
}

// WriteStream XADDs one entry per change, `o.batch` XADDs per pipeline round trip.
func WriteStream(ctx context.Context, o options, changes []Change) (int, error) {
	redisOpts, err := redis.ParseURL(o.redisURL)
	if err != nil {
		return 0, fmt.Errorf("-redis %q: %w", o.redisURL, err)
	}
	client := redis.NewClient(redisOpts)
	defer client.Close()
	if err := client.Ping(ctx).Err(); err != nil {
		return 0, fmt.Errorf("redis %s: %w", o.redisURL, err)
	}
	enc := Encoding(o.encoding)
	written := 0
	for start := 0; start < len(changes); start += o.batch {
		end := min(start+o.batch, len(changes))
		pipe := client.Pipeline()
		cmds := make([]*redis.StringCmd, 0, end-start)
		for i := start; i < end; i++ {
			c := &changes[i]
			payload, writtenAs, err := EncodeChange(c, enc, o.switches)
			if err != nil {
				return written, fmt.Errorf("scenario line %d (event %s): %w", c.Line, c.EventID, err)
			}
			cmds = append(cmds, pipe.XAdd(ctx, &redis.XAddArgs{
				Stream: o.stream,
				ID:     EntryID(c, o.ids),
				Values: EntryFields(c, writtenAs, payload),
			}))
		}
		_, execErr := pipe.Exec(ctx)
		for j, cmd := range cmds {
			if err := cmd.Err(); err != nil {
				c := &changes[start+j]
				return written, fmt.Errorf("XADD %s %s (scenario line %d, event %s): %w",
					o.stream, EntryID(c, o.ids), c.Line, c.EventID, err)
			}
			written++
		}
		if execErr != nil {
			return written, fmt.Errorf("pipeline: %w", execErr)
		}
	}
	return written, nil
}
