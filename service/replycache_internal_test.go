package service

import (
	"testing"

	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// TestReplyCacheBounds: inline replies, whose content the cache holds in
// memory, are bounded in bytes as well as in number; one larger than
// maxCachedInlineReply is not kept; replacing an entry accounts for it.
func TestReplyCacheBounds(t *testing.T) {
	var c replyCache
	inline := func(n int) *cachedReply {
		return &cachedReply{reply: &eventlogpb.GetEventlogReply{EventlogData: make([]byte, n)}}
	}
	const size = 256 << 10
	for i := range 3 * maxCachedInlineBytes / size {
		c.put(replyKey{first: i, inline: true}, inline(size))
		if c.inlineBytes > maxCachedInlineBytes {
			t.Fatalf("after %d replies of %d bytes the cache holds %d bytes, more than %d", i+1, size, c.inlineBytes, maxCachedInlineBytes)
		}
	}
	if got := c.get(replyKey{first: 3*maxCachedInlineBytes/size - 1, inline: true}); got == nil {
		t.Error("the last reply put is not in the cache")
	}
	held := 0
	for _, e := range c.m {
		held += len(e.reply.EventlogData)
	}
	if held != c.inlineBytes {
		t.Errorf("the cache counts %d bytes, holds %d", c.inlineBytes, held)
	}

	big := replyKey{first: -1, inline: true}
	c.put(big, inline(maxCachedInlineReply+1))
	if c.get(big) != nil {
		t.Error("a reply larger than maxCachedInlineReply was kept")
	}

	var d replyCache
	k := replyKey{inline: true}
	d.put(k, inline(100))
	d.put(k, inline(300))
	if d.inlineBytes != 300 || len(d.m) != 1 {
		t.Errorf("a replaced entry: %d bytes in %d entries, want 300 in 1", d.inlineBytes, len(d.m))
	}
	for i := range maxCachedReplies + 10 {
		d.put(replyKey{first: i + 1}, &cachedReply{name: "f", reply: &eventlogpb.GetEventlogReply{}})
	}
	if len(d.m) > maxCachedReplies {
		t.Errorf("%d replies held, more than %d", len(d.m), maxCachedReplies)
	}
}
