# The user application of the in-cluster specs: the e2e test binary, built by
# kind/up.sh with `go test -c` (static, CGO_ENABLED=0), alone in an empty
# image. The specs run it as a Job that mounts the server's socket and event
# log directories from the node, as deployment/README.md tells applications to.
FROM scratch
COPY e2e.test /e2e.test
# Any uid: the socket and the files need no privilege. 65534 is "nobody".
USER 65534:65534
ENTRYPOINT ["/e2e.test"]
