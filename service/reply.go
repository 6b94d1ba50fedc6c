package service

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sync"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/outdir"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// One pipeline answers GetEventlog at both levels: the events asked for
// are selected from the log served, then, on a miss of the reply cache,
// rendered (their size known before a byte is encoded) and delivered:
// inline in the reply, or written in pieces to a file in the shared output
// directory or in the caller's own directory. A file delivered once is
// handed out again for the same request while it stays as written.

// served is a log as a GetEventlog request sees it, with what the reply
// says of it.
type served struct {
	log  *eventlog.Log
	json eventlog.JSONOptions
	// gen is the log's generation: it changes whenever the log does.
	gen uint64
	// name says which log it is in its files' names: "tdx", "saas-tpm".
	name string
	// source and simulated say where it comes from, in the reply.
	source    string
	simulated bool
}

// destination is where a reply's file goes: the shared output directory,
// or a caller's subdirectory (sub) of the private one, given to owner.
type destination struct {
	dir   *outdir.Dir
	sub   string
	owner *outdir.Owner
}

// replyKey identifies a reply's file: the same log, slice and format, to
// the same place, always give the same content, so the file is written
// once and handed out again.
type replyKey struct {
	level       eventlogpb.LEVEL
	category    eventlogpb.CATEGORY
	format      eventlogpb.FORMAT
	first, last int
	gen         uint64
	sub         string
	owner       outdir.Owner
	inline      bool
}

// replyCache remembers recent replies so that a repeated request costs a map
// lookup. It is bounded: the number of possible slices grows with the square
// of the log's length, and any client may ask for all of them.
type replyCache struct {
	mu          sync.RWMutex
	m           map[replyKey]*cachedReply
	inlineBytes int // the content of the inline replies held
}

// The cache's bounds: replies, and the content of inline replies, which
// is held in memory (a file's is on tmpfs, bounded by outdir).
const (
	maxCachedReplies     = 4096
	maxCachedInlineBytes = 16 << 20
	maxCachedInlineReply = 1 << 20
)

func (c *replyCache) get(k replyKey) *cachedReply {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[k]
}

func (c *replyCache) put(k replyKey, r *cachedReply) {
	size := len(r.reply.EventlogData)
	if size > maxCachedInlineReply {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[replyKey]*cachedReply{}
	}
	c.evict(c.m[k])
	delete(c.m, k)
	for len(c.m) > 0 && (len(c.m) >= maxCachedReplies || c.inlineBytes+size > maxCachedInlineBytes) {
		for old, e := range c.m { // evict an arbitrary entry: Go's map order is random
			c.evict(e)
			delete(c.m, old)
			break
		}
	}
	c.m[k] = r
	c.inlineBytes += size
}

// evict accounts for e leaving the cache. c.mu is held.
func (c *replyCache) evict(e *cachedReply) {
	if e != nil {
		c.inlineBytes -= len(e.reply.EventlogData)
	}
}

// cachedReply is a reply whole, built once: it is handed to gRPC as it
// is, for every request it answers, and never changed (gRPC only reads it).
type cachedReply struct {
	name  string // its file's; "" for an inline reply
	reply *eventlogpb.GetEventlogReply
}

// reply answers req from the log l: the events it asks for, inline or in a
// file at to.
func (s *Service) reply(req *eventlogpb.GetEventlogRequest, l served, to destination) (*eventlogpb.GetEventlogReply, error) {
	events, err := s.slice(l.log, req.StartPosition, req.Count)
	if err != nil {
		return nil, err
	}
	first, last := span(events)
	return s.deliver(req, l.gen, first, last, to, func() rendered { return render(l, events, req.Format) })
}

// deliver answers req with the events first..last of a log at generation
// gen, rendered by render: inline, or in a file at to, handed out again
// while the same request would get the same content.
func (s *Service) deliver(req *eventlogpb.GetEventlogRequest, gen uint64, first, last int, to destination, render func() rendered) (*eventlogpb.GetEventlogReply, error) {
	key := replyKey{level: req.EventlogLevel, category: req.EventlogCategory, format: req.Format, gen: gen, sub: to.sub, first: first, last: last, inline: req.Inline}
	if to.owner != nil {
		key.owner = *to.owner
	}
	if req.Inline {
		// A repeated inline request (a client polling one slice) costs a
		// map lookup too, for replies of up to maxCachedInlineReply.
		if c := s.replies.get(key); c != nil {
			return c.reply, nil
		}
		reply, err := s.inline(render())
		if err != nil {
			return nil, err
		}
		s.replies.put(key, &cachedReply{reply: reply})
		return reply, nil
	}
	if c := s.replies.get(key); c != nil {
		if _, ok := to.dir.Reuse(to.sub, c.name); ok {
			return c.reply, nil
		}
	}
	r := render()
	st, err := to.dir.Put(outdir.File{Sub: to.sub, Owner: to.owner, Label: r.label, Ext: r.ext, Size: r.size, Write: r.write})
	if err != nil {
		return nil, err
	}
	r.reply.Sha256, r.reply.EventlogDataLoc = st.SHA256, st.Path
	s.replies.put(key, &cachedReply{name: st.Name, reply: r.reply})
	return r.reply, nil
}

// rendered is a reply's content before it exists: its size, known without
// encoding, and how to write it in pieces or append it whole.
type rendered struct {
	// label and ext name its file; see outdir.File.
	label, ext string
	size       int64
	write      func(io.Writer) error
	append     func([]byte) []byte
	// reply describes the content, but for its digest and where it is.
	reply *eventlogpb.GetEventlogReply
}

// render prepares events, a slice of l, in format, with l's header, and
// describes them in a reply. The file's name says which log the events come
// from, which they are, and (outdir) the content's digest: the same events
// in the same format get the same name.
func render(l served, events []eventlog.Event, format eventlogpb.FORMAT) rendered {
	first, last := span(events)
	r := rendered{
		label: fmt.Sprintf("%s-%d-%d", l.name, first, last),
		reply: &eventlogpb.GetEventlogReply{
			EventCount:  uint32(len(events)),
			TotalEvents: uint32(len(l.log.Events)),
			Format:      format,
			FirstEvent:  uint32(first),
			Source:      l.source,
			Simulated:   l.simulated,
		},
	}
	if format == eventlogpb.FORMAT_TCG_RAW {
		r.ext, r.size = "bin", eventlog.RawSize(l.log, events)
		r.write = func(w io.Writer) error { return eventlog.WriteRaw(w, l.log, events) }
		r.append = func(b []byte) []byte { return eventlog.AppendRaw(b, l.log, events) }
		return r
	}
	r.ext, r.size = "json", eventlog.CCNPJSONSize(l.log, events, l.json)
	r.write = func(w io.Writer) error { return eventlog.WriteCCNPJSON(w, l.log, events, l.json) }
	r.append = func(b []byte) []byte { return eventlog.AppendCCNPJSON(b, l.log, events, l.json) }
	return r
}

// inline puts the content in the reply. It is held whole in memory, and
// then copied by gRPC: content larger than the inline limit is refused
// before anything is allocated.
func (s *Service) inline(r rendered) (*eventlogpb.GetEventlogReply, error) {
	if r.size > s.maxInline {
		return nil, &limitError{fmt.Sprintf("the events asked for take %d bytes, more than the %d this server sends inline (--max-inline-bytes): ask for a file (inline false), or for fewer events (count)", r.size, s.maxInline)}
	}
	content := r.append(make([]byte, 0, r.size))
	sum := sha256.Sum256(content)
	r.reply.Sha256 = hex.EncodeToString(sum[:])
	r.reply.EventlogData = content
	return r.reply, nil
}

// span is the numbers of the first and the last of events; 0 and 0 for none.
func span(events []eventlog.Event) (first, last int) {
	if len(events) == 0 {
		return 0, 0
	}
	return events[0].Num, events[len(events)-1].Num
}
