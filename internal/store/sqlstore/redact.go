package sqlstore

import (
	"net/url"
	"regexp"
	"strings"
)

// userinfoPassword matches the password of a URL's userinfo, for strings
// net/url cannot parse.
var userinfoPassword = regexp.MustCompile(`(://[^:/@?#]*):[^@/?#]*@`)

// keywordPassword matches password settings of key=value connection
// strings (host=db password=secret).
var keywordPassword = regexp.MustCompile(`(?i)\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s]*)`)

// secretParams are query parameters of database URLs that hold secrets.
var secretParams = []string{"password", "sslpassword", "sslkey"}

// RedactURL returns a database URL fit for errors and logs: the password of
// user:pass@ becomes xxxxx, as do password query parameters and the
// password of a key=value connection string.
func RedactURL(raw string) string {
	if !strings.Contains(raw, "://") {
		raw = keywordPassword.ReplaceAllString(raw, "${1}xxxxx")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.Scheme == "" {
		return userinfoPassword.ReplaceAllString(raw, "${1}:xxxxx@")
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	if q := u.Query(); len(q) > 0 {
		changed := false
		for _, k := range secretParams {
			if q.Has(k) {
				q.Set(k, "xxxxx")
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}
