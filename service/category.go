package service

import (
	"context"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	"github.com/ccnp-eventlog/ccnp-eventlog/runtimelog"
)

// category is one log category the service serves: its source's log, read
// once (hwsource.LogCache), and, with container-level events, its runtime
// log, which the first read opens on the boot log. The platform log is then
// the boot log followed by every runtime event recorded since boot.
type category struct {
	*hwsource.LogCache
	src  hwsource.Source
	name string // in file names: "tdx", "tpm"
	// source says where a log without a path comes from: src.Name(), once.
	source string

	// rt keeps the category's container-level events; nil when they are
	// off, and rtOff says why.
	rt    *runtimelog.Log
	rtOff error
}

// platformLog is what a category serves at platform level at one moment.
type platformLog struct {
	log  *eventlog.Log
	json eventlog.JSONOptions
	// gen counts the runtime events in log: replies cached for one
	// generation are not handed out for another.
	gen uint64
	// source says where the boot log was read: the file, or what is simulated.
	source string
}

// newCategory returns the category served from src, with its runtime log
// rt (nil: off, for the reason rtOff).
func newCategory(src hwsource.Source, name string, rt *runtimelog.Log, rtOff error, opts hwsource.CacheOptions) *category {
	c := &category{src: src, name: name, source: src.Name(), rt: rt, rtOff: rtOff}
	if rt != nil {
		// The runtime log is checked against the register before the
		// first reply: a record a crash left half done is settled here.
		opts.Then = func(ctx context.Context, boot *hwsource.Log) { rt.Open(ctx, boot.Parsed) }
	}
	c.LogCache = hwsource.NewLogCache(src, opts)
	return c
}

// platform returns the category's platform log now.
func (c *category) platform(ctx context.Context) (platformLog, error) {
	b, err := c.Log(ctx)
	if err != nil {
		return platformLog{}, err
	}
	p := platformLog{log: b.Parsed, json: eventlog.JSONOptions{Kind: c.src.Kind(), Address: b.Address}, source: b.Path}
	if p.source == "" {
		p.source = c.source
	}
	if c.rt != nil {
		v := c.rt.View()
		p.log, p.gen = v.Platform, uint64(v.Records)
	}
	return p, nil
}
