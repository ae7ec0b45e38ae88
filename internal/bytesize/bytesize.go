// Package bytesize parses and prints sizes in bytes, as the CLI's size
// flags (--max-config-size) accept them: "16MiB", "64MB", "512KiB",
// "1GiB" or a plain number of bytes.
package bytesize

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Units by suffix, case-insensitive: binary (KiB = 1024) and decimal
// (KB = 1000); a bare K, M or G is binary.
var units = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1000,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1000 * 1000,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1000 * 1000 * 1000,
}

const forms = "use a size such as 16MiB, 64MB, 512KiB, 1GiB or a number of bytes"

// Parse parses a size such as "16MiB", "64MB", "1.5GiB" or "1048576".
// It must be positive.
func Parse(s string) (int64, error) {
	in := strings.TrimSpace(s)
	i := strings.IndexFunc(in, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := in, ""
	if i >= 0 {
		num, unit = in[:i], strings.ToLower(strings.TrimSpace(in[i:]))
	}
	mult, ok := units[unit]
	if !ok || num == "" {
		return 0, fmt.Errorf("invalid size %q; %s", s, forms)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f <= 0 || f*float64(mult) >= math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q; %s", s, forms)
	}
	n := int64(f * float64(mult))
	if n < 1 {
		return 0, fmt.Errorf("invalid size %q: less than one byte; %s", s, forms)
	}
	return n, nil
}

// Format prints n in the largest binary unit that keeps it readable:
// "16 MiB", "41.9 MiB", "512 KiB", "900 bytes".
func Format(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size {
			v := float64(n) / float64(u.size)
			if n%u.size == 0 {
				return fmt.Sprintf("%d %s", n/u.size, u.name)
			}
			return strconv.FormatFloat(v, 'f', 1, 64) + " " + u.name
		}
	}
	if n == 1 {
		return "1 byte"
	}
	return fmt.Sprintf("%d bytes", n)
}

// Value is a size flag (pflag.Value and flag.Value).
type Value struct{ N *int64 }

// String prints the size in the form Parse accepts.
func (v Value) String() string {
	if v.N == nil {
		return ""
	}
	return strings.ReplaceAll(Format(*v.N), " ", "")
}

// Set parses a size.
func (v Value) Set(s string) error {
	n, err := Parse(s)
	if err != nil {
		return err
	}
	*v.N = n
	return nil
}

// Type names the flag's value in help.
func (Value) Type() string { return "size" }
