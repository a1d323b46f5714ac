package main

import (
	"fmt"
	"hash/crc32"
	"math"
)

// SampleBuckets is the residue range of the sticky sample rule (docs/rollouts.md).
const SampleBuckets = 100000

// Share keys: what the sticky rule hashes.
const (
	ShareKeyEntityID = "entity_id"
	ShareKeyEventID  = "event_id"
)

// InShare is the sticky rule a router uses to send a share of the writes to the new
// service, exactly as cdc-verify's --scope sample:PCT computes it (Python:
// zlib.crc32(key) % 100000 < pct * 1000, a float comparison).
func InShare(key string, pct float64) bool {
	return float64(crc32.ChecksumIEEE([]byte(key))%SampleBuckets) < pct*1000
}

// ValidateShare checks -share and -share-key.
func ValidateShare(pct float64, key string) error {
	if math.IsNaN(pct) || pct < 0 || pct > 100 {
		return fmt.Errorf("-share %v: want a percentage from 0 to 100", pct)
	}
	if key != ShareKeyEntityID && key != ShareKeyEventID {
		return fmt.Errorf("-share-key %q: want %s or %s", key, ShareKeyEntityID, ShareKeyEventID)
	}
	return nil
}

// Share keeps the changes the sticky rule routes to this service, in order; `skipped`
// is how many it leaves to the legacy service alone.
func Share(changes []Change, pct float64, key string) (kept []Change, skipped int) {
	if pct >= 100 {
		return changes, 0 // every residue is below 100000
	}
	kept = make([]Change, 0, len(changes))
	for _, c := range changes {
		k := c.EntityID
		if key == ShareKeyEventID {
			k = c.EventID
		}
		if InShare(k, pct) {
			kept = append(kept, c)
		}
	}
	return kept, len(changes) - len(kept)
}
