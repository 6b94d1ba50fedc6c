package simulator

import (
	"crypto/ed25519"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"math/rand/v2"
	"time"
)

// secureBootKeys are the simulated platform's Secure Boot certificates: a
// self-signed PK, a KEK signed by the PK, a db key signed by the KEK. They
// are real DER X.509 certificates, derived from the seed: Ed25519 keys come
// from seed bytes and Ed25519 signatures are deterministic, so a seed always
// yields the same bytes.
type secureBootKeys struct {
	pk, kek, db []byte
}

func newSecureBootKeys(rng *rand.Rand, seed int64) (secureBootKeys, error) {
	key := func() ed25519.PrivateKey {
		var s [ed25519.SeedSize]byte
		for i := range s {
			s[i] = byte(rng.Uint32())
		}
		return ed25519.NewKeyFromSeed(s[:])
	}
	pkKey, kekKey, dbKey := key(), key(), key()
	notBefore := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	template := func(serial int64, cn string, ca bool) *x509.Certificate {
		return &x509.Certificate{
			SerialNumber:          big.NewInt(serial),
			Subject:               pkix.Name{Organization: []string{"ccnp-eventlog simulator"}, CommonName: fmt.Sprintf("%s (seed %d)", cn, seed)},
			NotBefore:             notBefore,
			NotAfter:              notBefore.AddDate(20, 0, 0),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			BasicConstraintsValid: true,
			IsCA:                  ca,
		}
	}
	pkT := template(1, "Simulated Platform Key", true)
	kekT := template(2, "Simulated Key Exchange Key", true)
	dbT := template(3, "Simulated Signature Database Key", false)
	var keys secureBootKeys
	var err error
	// Ed25519 signatures use no randomness, so no random source is given.
	if keys.pk, err = x509.CreateCertificate(nil, pkT, pkT, pkKey.Public(), pkKey); err != nil {
		return keys, fmt.Errorf("simulated PK certificate: %w", err)
	}
	if keys.kek, err = x509.CreateCertificate(nil, kekT, pkT, kekKey.Public(), pkKey); err != nil {
		return keys, fmt.Errorf("simulated KEK certificate: %w", err)
	}
	if keys.db, err = x509.CreateCertificate(nil, dbT, kekT, dbKey.Public(), kekKey); err != nil {
		return keys, fmt.Errorf("simulated db certificate: %w", err)
	}
	return keys, nil
}
