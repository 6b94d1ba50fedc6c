// Package eventlogpb is the Go code protoc generates from eventlog.proto:
// the Eventlog service's messages, client and server. The generated files
// are committed; `make proto` regenerates them, and a test checks that they
// are what the .proto gives.
package eventlogpb
