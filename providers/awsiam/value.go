package awsiam

import (
	"bytes"
	"encoding/json"
	"errors"
	"regexp"
	"strings"

	"github.com/rotatorhq/rotator/internal/secret"
)

// accessKeyID is the shape of an access key id: 16 to 128 upper-case
// letters and digits (AKIA… for long-term keys).
var accessKeyID = regexp.MustCompile(`^[A-Z0-9]{16,128}$`)

// render builds the published value of a key in format.
func render(format, id string, sk secret.Value) secret.Value {
	if format == FormatDotenv {
		return secret.NewString(EnvAccessKeyID + "=" + id + "\n" + EnvSecretAccessKey + "=" + sk.RevealString() + "\n")
	}
	b, _ := json.Marshal(map[string]string{EnvAccessKeyID: id, EnvSecretAccessKey: sk.RevealString()})
	return secret.New(b)
}

var errValue = errors.New("the value is not an access key in the configured format (" + FormatJSON + ": {\"" + EnvAccessKeyID + "\": ..., \"" + EnvSecretAccessKey + "\": ...}; " + FormatDotenv + ": two lines " + EnvAccessKeyID + "=... and " + EnvSecretAccessKey + "=...)")

// parseValue reads the key id and secret key of a value. Its errors never
// quote the value.
func parseValue(format string, v secret.Value) (id string, sk secret.Value, err error) {
	var fields map[string]string
	if format == FormatDotenv {
		fields = map[string]string{}
		for _, line := range strings.Split(v.RevealString(), "\n") {
			if k, val, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
				fields[k] = val
			}
		}
	} else {
		d := json.NewDecoder(bytes.NewReader(v.Reveal()))
		if d.Decode(&fields) != nil {
			return "", secret.Value{}, errValue
		}
	}
	id, s := fields[EnvAccessKeyID], fields[EnvSecretAccessKey]
	if !accessKeyID.MatchString(id) || s == "" {
		return "", secret.Value{}, errValue
	}
	return id, secret.NewString(s), nil
}
