package bytesize

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]int64{
		"16MiB": 16 << 20, "16mib": 16 << 20, "16M": 16 << 20, "64MB": 64_000_000, "512KiB": 512 << 10,
		"1GiB": 1 << 30, "1.5GiB": 3 << 29, "1048576": 1 << 20, " 2 MiB ": 2 << 20, "100b": 100, "1kb": 1000,
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "-1MiB", "0", "16XB", "1e3", "0.1b", "16 Mi B", "9999999999GiB"} {
		if n, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %d, want an error", in, n)
		}
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{
		1: "1 byte", 900: "900 bytes", 1024: "1 KiB", 16 << 20: "16 MiB", 43917440: "41.9 MiB", 3 << 29: "1.5 GiB",
	} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestValueRoundTrip(t *testing.T) {
	n := int64(16 << 20)
	v := Value{N: &n}
	if v.String() != "16MiB" {
		t.Fatalf("String() = %q", v.String())
	}
	if err := v.Set("64MiB"); err != nil || n != 64<<20 {
		t.Fatalf("Set: %d, %v", n, err)
	}
	if err := v.Set(v.String()); err != nil || n != 64<<20 {
		t.Fatalf("Set(String()): %d, %v", n, err)
	}
}
