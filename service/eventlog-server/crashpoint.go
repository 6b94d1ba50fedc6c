package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"syscall"

	"github.com/ccnp-eventlog/ccnp-eventlog/eventlog"
	"github.com/ccnp-eventlog/ccnp-eventlog/hwsource"
	eventlogpb "github.com/ccnp-eventlog/ccnp-eventlog/proto"
)

// crashPointEnv names the environment variable that makes the server kill
// itself (SIGKILL) at a point of recording a container-level event, for the
// e2e crash-recovery specs only, which run this binary as it ships. It is
// not a flag, so that --help does not offer it, and nothing but this file
// knows of it: the crash points are installed around the sources' register
// extends, where a record is durable in the runtime log and either not yet
// in the register ("after-append") or in it too ("after-extend"), and the
// server dies before anything more happens. The runtime log extends only
// records it has made durable (a new one, or one a crash left unextended,
// settled at start), so these are the points between its append and its
// reply.
const crashPointEnv = "EVENTLOG_TEST_CRASH_POINT"

const (
	crashAfterAppend = "after-append"
	crashAfterExtend = "after-extend"
)

// withCrashPoint returns srcs with the crash point installed around every
// source that extends registers; an empty point changes nothing.
func withCrashPoint(srcs map[eventlogpb.CATEGORY]hwsource.Source, point string, logger *slog.Logger) (map[eventlogpb.CATEGORY]hwsource.Source, error) {
	switch point {
	case "":
		return srcs, nil
	case crashAfterAppend, crashAfterExtend:
	default:
		return nil, fmt.Errorf("%s: unknown crash point %q (after-append or after-extend)", crashPointEnv, point)
	}
	out := map[eventlogpb.CATEGORY]hwsource.Source{}
	for cat, src := range srcs {
		if ext, ok := src.(hwsource.Extender); ok {
			src = &crashingExtender{Extender: ext, point: point, log: logger}
		}
		out[cat] = src
	}
	return out, nil
}

// crashingExtender kills the server at its crash point around an extend.
type crashingExtender struct {
	hwsource.Extender
	point string
	log   *slog.Logger
}

func (c *crashingExtender) Extend(ctx context.Context, index uint32, digests []eventlog.Digest) error {
	c.crash(crashAfterAppend)
	err := c.Extender.Extend(ctx, index, digests)
	if err == nil {
		c.crash(crashAfterExtend)
	}
	return err
}

func (c *crashingExtender) crash(point string) {
	if c.point == point {
		c.log.Warn("crash point reached: killing the server", "point", point)
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}
