// Package testaws is a fake of AWS IAM and STS at the protocol level (the
// Query protocol, Signature Version 4 checked in full), for the tests of
// the aws-iam-access-key provider and the end-to-end tests, which point the
// real AWS SDK clients at it.
package testaws

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fake speaks the IAM and STS Query protocols (form-encoded POST, XML
// responses) as the AWS SDK's clients use them, and checks every request's
// Signature Version 4 in full: the structure of the Authorization header,
// the credential scope (date, region, service), the signed headers, and the
// signature itself, recomputed with the secret key of the key id that
// signed. IAM actions need the admin key; STS GetCallerIdentity answers
// with the ARN of the user owning the key that signed, which IAM must know
// and hold Active. A user has at most two keys (LimitExceeded).
type Fake struct {
	t   testing.TB
	srv *httptest.Server

	// AdminID and AdminKey are the access key of the account's admin,
	// which signs IAM calls (set by New, never changed).
	AdminID, AdminKey string

	mu         sync.Mutex
	account    string
	users      map[string][]*Key // user -> keys
	keys       map[string]*Key   // id -> key
	propagate  time.Duration     // how long a new key is refused by STS
	stsSigners []string          // key id of every STS call, in order
	iamSigners map[string]int
	stalled    chan struct{} // non-nil while stalled
}

// Key is an IAM access key.
type Key struct {
	ID, Secret, User string
	status           string
	created          time.Time
}

// New starts a fake AWS account with these IAM users (and no keys); it stops
// when the test ends.
func New(t testing.TB, users ...string) *Fake {
	f := &Fake{t: t, account: "123456789012", AdminID: "AKIAADMIN" + randomUpper(11), AdminKey: randomSecret(),
		users: map[string][]*Key{}, keys: map[string]*Key{}, iamSigners: map[string]int{}}
	for _, u := range users {
		f.users[u] = nil
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func randomUpper(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// randomSecret looks like a secret access key: 40 characters of base64,
// with / and +.
func randomSecret() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := make([]byte, 40)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// AddKey gives user a key created outside rotator.
func (f *Fake) AddKey(user, status string) *Key {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := &Key{ID: "AKIA" + randomUpper(16), Secret: randomSecret(), User: user, status: status, created: time.Now().Add(-24 * time.Hour)}
	f.users[user] = append(f.users[user], k)
	f.keys[k.ID] = k
	return k
}

// KeyCount is how many keys user has.
func (f *Fake) KeyCount(user string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.users[user])
}

// LastSTSSigner is the key id that signed the last STS call.
func (f *Fake) LastSTSSigner() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.stsSigners) == 0 {
		return ""
	}
	return f.stsSigners[len(f.stsSigners)-1]
}

// URL is the endpoint of both IAM and STS.
func (f *Fake) URL() string { return f.srv.URL }

// SetPropagation makes STS refuse a key for d after its creation, as AWS
// does while a new key propagates.
func (f *Fake) SetPropagation(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.propagate = d
}

// IAMSigners counts the IAM calls by the key id that signed them.
func (f *Fake) IAMSigners() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.iamSigners)
}

// HasKey reports whether a key with this id exists.
func (f *Fake) HasKey(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.keys[id]
	return ok
}

// Stall holds every request until resume is called or its client leaves.
func (f *Fake) Stall() func() {
	f.mu.Lock()
	ch := make(chan struct{})
	f.stalled = ch
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			f.stalled = nil
			f.mu.Unlock()
			close(ch)
		})
	}
}

var authRE = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([A-Z0-9]+)/(\d{8})/([a-z0-9-]+)/([a-z]+)/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$`)

func (f *Fake) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	stalled := f.stalled
	f.mu.Unlock()
	if stalled != nil {
		select {
		case <-stalled:
		case <-r.Context().Done():
			return // the client gave up: nothing happens
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		f.t.Errorf("fake AWS: %s with Content-Type %q; the Query protocol is a form-encoded POST", r.Method, r.Header.Get("Content-Type"))
		f.fail(w, 400, "MalformedQueryString", "not a form POST")
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		f.fail(w, 400, "MalformedQueryString", "bad form")
		return
	}
	action, version := form.Get("Action"), form.Get("Version")
	service := map[string]string{"2010-05-08": "iam", "2011-06-15": "sts"}[version]
	if service == "" {
		f.fail(w, 400, "InvalidAction", "unknown version")
		return
	}
	signer, ok := f.checkSignature(w, r, body, service)
	if !ok {
		return
	}
	if service == "sts" {
		f.getCallerIdentity(w, action, signer)
		return
	}
	f.mu.Lock()
	f.iamSigners[signer]++
	f.mu.Unlock()
	if signer != f.AdminID {
		f.fail(w, 403, "AccessDenied", "User is not authorized to perform: iam:"+action)
		return
	}
	f.iamAction(w, action, form)
}

// checkSignature verifies the request's SigV4 signature and returns the key
// id that signed. It writes the error response itself.
func (f *Fake) checkSignature(w http.ResponseWriter, r *http.Request, body []byte, service string) (string, bool) {
	m := authRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		f.t.Errorf("fake AWS: malformed Authorization header for %s", service)
		f.fail(w, 400, "IncompleteSignature", "malformed Authorization")
		return "", false
	}
	keyID, date, region, svc, signedHeaders, signature := m[1], m[2], m[3], m[4], m[5], m[6]
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", amzDate)
	switch {
	case err != nil || !strings.HasPrefix(amzDate, date):
		f.t.Errorf("fake AWS: X-Amz-Date %q does not match the scope date %s", amzDate, date)
	case time.Since(t).Abs() > 5*time.Minute:
		f.t.Errorf("fake AWS: X-Amz-Date %s is not now", amzDate)
	case svc != service:
		f.t.Errorf("fake AWS: a %s request is signed for service %s", service, svc)
	case service == "iam" && region != "us-east-1":
		f.t.Errorf("fake AWS: IAM request signed for region %s, want us-east-1 (IAM is global)", region)
	}
	headers := strings.Split(signedHeaders, ";")
	if !slices.IsSorted(headers) || !slices.Contains(headers, "host") || !slices.Contains(headers, "x-amz-date") {
		f.t.Errorf("fake AWS: SignedHeaders %q must be sorted and include host and x-amz-date", signedHeaders)
	}
	f.mu.Lock()
	secretKey := ""
	if keyID == f.AdminID {
		secretKey = f.AdminKey
	} else if k := f.keys[keyID]; k != nil {
		secretKey = k.Secret
	}
	f.mu.Unlock()
	if secretKey == "" {
		f.fail(w, 403, "InvalidClientTokenId", "The security token included in the request is invalid.")
		return "", false
	}
	var canon strings.Builder
	canon.WriteString(r.Method + "\n" + r.URL.EscapedPath() + "\n" + r.URL.RawQuery + "\n")
	for _, h := range headers {
		var v string
		switch h {
		case "host":
			v = r.Host
		case "content-length":
			v = strconv.FormatInt(r.ContentLength, 10)
		default:
			v = strings.Join(r.Header.Values(h), ",")
		}
		canon.WriteString(h + ":" + strings.Join(strings.Fields(v), " ") + "\n")
	}
	payload := sha256.Sum256(body)
	canon.WriteString("\n" + signedHeaders + "\n" + hex.EncodeToString(payload[:]))
	creq := sha256.Sum256([]byte(canon.String()))
	scope := date + "/" + region + "/" + svc + "/aws4_request"
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(creq[:])
	k := hmacSHA256([]byte("AWS4"+secretKey), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, svc)
	k = hmacSHA256(k, "aws4_request")
	want := hex.EncodeToString(hmacSHA256(k, toSign))
	if !hmac.Equal([]byte(want), []byte(signature)) {
		f.fail(w, 403, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
		return "", false
	}
	return keyID, true
}

func hmacSHA256(key []byte, s string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(s))
	return h.Sum(nil)
}

func (f *Fake) getCallerIdentity(w http.ResponseWriter, action, signer string) {
	if action != "GetCallerIdentity" {
		f.fail(w, 400, "InvalidAction", "unsupported STS action")
		return
	}
	f.mu.Lock()
	f.stsSigners = append(f.stsSigners, signer)
	k := f.keys[signer]
	ok := k != nil && k.status == "Active" && time.Since(k.created) >= f.propagate
	f.mu.Unlock()
	if signer == f.AdminID {
		ok, k = true, &Key{User: "rotator-admin"}
	}
	if !ok {
		f.fail(w, 403, "InvalidClientTokenId", "The security token included in the request is invalid.")
		return
	}
	f.write(w, "GetCallerIdentity", "https://sts.amazonaws.com/doc/2011-06-15/", fmt.Sprintf(
		"<Arn>arn:aws:iam::%s:user/mcp/%s</Arn><UserId>AIDA%s</UserId><Account>%s</Account>", f.account, k.User, randomUpper(17), f.account))
}

func (f *Fake) iamAction(w http.ResponseWriter, action string, form url.Values) {
	user := form.Get("UserName")
	f.mu.Lock()
	defer f.mu.Unlock()
	keys, exists := f.users[user]
	if !exists {
		f.fail(w, 404, "NoSuchEntity", "The user with name "+user+" cannot be found.")
		return
	}
	const ns = "https://iam.amazonaws.com/doc/2010-05-08/"
	switch action {
	case "ListAccessKeys":
		var b strings.Builder
		b.WriteString("<AccessKeyMetadata>")
		for _, k := range keys {
			fmt.Fprintf(&b, "<member><UserName>%s</UserName><AccessKeyId>%s</AccessKeyId><Status>%s</Status><CreateDate>%s</CreateDate></member>",
				k.User, k.ID, k.status, k.created.UTC().Format(time.RFC3339))
		}
		b.WriteString("</AccessKeyMetadata><IsTruncated>false</IsTruncated>")
		f.write(w, action, ns, b.String())
	case "CreateAccessKey":
		if len(keys) >= 2 {
			f.fail(w, 409, "LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: 2")
			return
		}
		k := &Key{ID: "AKIA" + randomUpper(16), Secret: randomSecret(), User: user, status: "Active", created: time.Now()}
		f.users[user] = append(keys, k)
		f.keys[k.ID] = k
		f.write(w, action, ns, fmt.Sprintf("<AccessKey><UserName>%s</UserName><AccessKeyId>%s</AccessKeyId><Status>Active</Status><SecretAccessKey>%s</SecretAccessKey><CreateDate>%s</CreateDate></AccessKey>",
			user, k.ID, k.Secret, k.created.UTC().Format(time.RFC3339)))
	case "UpdateAccessKey", "DeleteAccessKey":
		id := form.Get("AccessKeyId")
		i := slices.IndexFunc(keys, func(k *Key) bool { return k.ID == id })
		if i < 0 {
			f.fail(w, 404, "NoSuchEntity", "The Access Key with id "+id+" cannot be found.")
			return
		}
		if action == "UpdateAccessKey" {
			st := form.Get("Status")
			if st != "Active" && st != "Inactive" {
				f.fail(w, 400, "ValidationError", "bad Status")
				return
			}
			keys[i].status = st
		} else {
			delete(f.keys, id)
			f.users[user] = slices.Delete(keys, i, i+1)
		}
		f.write(w, action, ns, "")
	default:
		f.fail(w, 400, "InvalidAction", "unsupported IAM action "+action)
	}
}

func (f *Fake) write(w http.ResponseWriter, action, ns, result string) {
	w.Header().Set("Content-Type", "text/xml")
	res := ""
	if result != "" || action == "GetCallerIdentity" || action == "ListAccessKeys" || action == "CreateAccessKey" {
		res = "<" + action + "Result>" + result + "</" + action + "Result>"
	}
	fmt.Fprintf(w, `<%sResponse xmlns="%s">%s<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>`,
		action, ns, res, randomUpper(8), action)
}

func (f *Fake) fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	var esc strings.Builder
	_ = xml.EscapeText(&esc, []byte(msg))
	fmt.Fprintf(w, `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`,
		code, esc.String(), randomUpper(8))
}
