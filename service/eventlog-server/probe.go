package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func init() {
	commands["probe"] = command{"check the server's health (Kubernetes exec probe): exit 0 when SERVING", runProbe}
}

const defaultSocket = "/run/ccnp/uds/eventlog.sock"

func runProbe(args []string) int {
	fs := newFlagSet("probe", "eventlog-server probe [flags]")
	socket := fs.String("socket", defaultSocket, "Unix socket of the server")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for an answer")
	service := fs.String("service", "", "health service name to check (empty: the server as a whole)")
	if err := parseFlags(fs, args); err != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	st, err := probe(ctx, *socket, *service)
	if err != nil {
		fmt.Fprintf(os.Stderr, "probe: %s: %v\n", *socket, err)
		return 1
	}
	fmt.Println(st)
	if st != healthpb.HealthCheckResponse_SERVING {
		return 1
	}
	return 0
}

func probe(ctx context.Context, socket, service string) (healthpb.HealthCheckResponse_ServingStatus, error) {
	conn, err := grpc.NewClient("unix:"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return 0, err
	}
	return resp.Status, nil
}
