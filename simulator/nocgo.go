//go:build !cgo

package simulator

// cgoEnabled says whether this build can run the go-tpm-tools simulator,
// which is C (the Microsoft reference TPM, linked against OpenSSL).
const cgoEnabled = false
