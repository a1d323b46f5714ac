// Command gowriter is the new (Go) service's CDC writer, for cdc-verify's end-to-end
// tests: it reads a scenario of logical changes to comments and accounts (JSON lines,
// the same file the Python legacy writer reads) and XADDs one sister-stream entry per
// change, with the payload encoded by the libraries a real Go service uses
// (vmihailenco/msgpack v5, google.golang.org/protobuf) and written by go-redis v9.
// With -share it writes only a sticky share of the changes, as a ramp's router sends it.
//
// The default output is correct: the legacy Python consumer decodes it to exactly
// what the legacy writer's payload decodes to. Divergence switches reproduce classic
// Go-to-Python mistakes. With -vectors it writes test vectors instead of XADDing.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

type options struct {
	redisURL string
	stream   string
	scenario string
	cases    string
	encoding string
	ids      string
	batch    int
	vectors  string
	share    float64
	shareKey string
	switches Switches
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func newFlagSet(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("gowriter", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.redisURL, "redis", "redis://127.0.0.1:6379/0", "Redis URL")
	fs.StringVar(&o.stream, "stream", "cdc:sister", "sister stream key")
	fs.StringVar(&o.scenario, "scenario", "", "scenario file (JSON lines, one change per line; this or -cases)")
	fs.StringVar(&o.cases, "cases", "", "cases.json of `cdc-verify cases`: write its real production events again (this or -scenario)")
	fs.StringVar(&o.encoding, "encoding", "msgpack", "comment payload encoding: msgpack or protobuf (accounts are always msgpack)")
	fs.StringVar(&o.ids, "ids", "explicit", "stream entry ids: explicit (<ts_ms>-0 from the scenario) or auto (*)")
	fs.IntVar(&o.batch, "pipeline", 1000, "XADDs per pipeline round trip")
	fs.Float64Var(&o.share, "share", 100, "write only this percentage of the changes, sticky by -share-key: crc32(key) % 100000 < PCT*1000")
	fs.StringVar(&o.shareKey, "share-key", ShareKeyEntityID, "what -share hashes: entity_id or event_id")
	fs.StringVar(&o.vectors, "vectors", "", "write test vectors (first 3 changes, every variant) and manifest.json into this directory instead of XADDing")
	s := &o.switches
	// The switches change comment payloads only: accounts are always written correctly.
	fs.BoolVar(&s.NilAwards, "nil-awards", false, "divergence: awards slice left nil (msgpack nil)")
	fs.BoolVar(&s.TimeCreated, "time-created", false, "divergence: created_utc as time.Time (msgpack ext -1)")
	fs.BoolVar(&s.Float32, "float32", false, "divergence: created_utc and a numeric edited as float32")
	fs.BoolVar(&s.OmitEmpty, "omitempty", false, "divergence: omitempty struct tags (zero values dropped)")
	fs.BoolVar(&s.BytesBody, "bytes-body", false, "divergence: body as []byte (msgpack bin)")
	fs.BoolVar(&s.IntCreated, "int-created", false, "divergence: created_utc as int64 (truncated seconds)")
	fs.BoolVar(&s.EditedZero, "edited-zero", false, "divergence: edited as int 0 instead of false when not edited")
	fs.BoolVar(&s.Untagged, "untagged", false, "divergence: struct without msgpack tags (Go field names as keys)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: gowriter -scenario FILE [-redis URL] [-stream KEY] [-encoding msgpack|protobuf]\n"+
			"                [-ids explicit|auto] [-pipeline N] [-share PCT] [-share-key entity_id|event_id]\n"+
			"                [divergence switches]\n"+
			"       gowriter -scenario FILE -vectors DIR\n\nflags:\n")
		fs.PrintDefaults()
	}
	return fs
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	fs := newFlagSet(&o, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gowriter: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}
	if err := validate(&o, fs); err != nil {
		fmt.Fprintf(stderr, "gowriter: %v\n", err)
		return 2
	}
	read, what := ReadScenario, "scenario"
	if o.cases != "" {
		read, what = ReadCases, "cases"
	}
	changes, err := read(o.scenario + o.cases) // one of them is empty
	if err != nil {
		fmt.Fprintf(stderr, "gowriter: %s: %v\n", what, err)
		return 1
	}
	if o.vectors != "" {
		n, err := WriteVectors(o.vectors, changes)
		if err != nil {
			fmt.Fprintf(stderr, "gowriter: vectors: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "gowriter: wrote %d vectors and manifest.json into %s\n", n, o.vectors)
		return 0
	}
	changes, skipped := Share(changes, o.share, o.shareKey)
	n, err := WriteStream(context.Background(), o, changes)
	if err != nil {
		fmt.Fprintf(stderr, "gowriter: %v\n", err)
		return 1
	}
	shared := ""
	if o.share < 100 {
		shared = fmt.Sprintf("; %d changes outside the share", skipped)
	}
	fmt.Fprintf(stdout, "gowriter: %d entries -> %s (%s%s)\n", n, o.stream, describe(o), shared)
	return 0
}

func validate(o *options, fs *flag.FlagSet) error {
	if (o.scenario == "") == (o.cases == "") {
		return fmt.Errorf("give -scenario FILE or -cases FILE (one of them)")
	}
	if o.vectors != "" {
		// Vectors cover every variant by themselves: stream and variant flags make no sense.
		var conflicting []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name != "vectors" && f.Name != "scenario" && f.Name != "cases" {
				conflicting = append(conflicting, "-"+f.Name)
			}
		})
		if len(conflicting) > 0 {
			return fmt.Errorf("-vectors writes every variant and touches no Redis; drop %s",
				strings.Join(conflicting, ", "))
		}
		return nil
	}
	switch Encoding(o.encoding) {
	case EncodingMsgpack:
	case EncodingProtobuf:
		if o.switches.Any() {
			return fmt.Errorf("divergence switches apply to -encoding msgpack only")
		}
	default:
		return fmt.Errorf("-encoding %q: want msgpack or protobuf", o.encoding)
	}
	if o.ids != "explicit" && o.ids != "auto" {
		return fmt.Errorf("-ids %q: want explicit or auto", o.ids)
	}
	if o.batch < 1 {
		return fmt.Errorf("-pipeline %d: want >= 1", o.batch)
	}
	if o.stream == "" {
		return fmt.Errorf("-stream must not be empty")
	}
	if err := ValidateShare(o.share, o.shareKey); err != nil {
		return err
	}
	return o.switches.Validate()
}

func describe(o options) string {
	parts := []string{o.encoding, "ids " + o.ids}
	if o.share < 100 {
		parts = append(parts, fmt.Sprintf("share %v%% by %s", o.share, o.shareKey))
	}
	s := o.switches
	for _, sw := range []struct {
		on   bool
		name string
	}{
		{s.NilAwards, "nil-awards"}, {s.TimeCreated, "time-created"}, {s.Float32, "float32"},
		{s.OmitEmpty, "omitempty"}, {s.BytesBody, "bytes-body"}, {s.IntCreated, "int-created"},
		{s.EditedZero, "edited-zero"}, {s.Untagged, "untagged"},
	} {
		if sw.on {
			parts = append(parts, "-"+sw.name)
		}
	}
	return strings.Join(parts, ", ")
}
