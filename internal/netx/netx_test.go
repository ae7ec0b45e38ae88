package netx

import "testing"

func TestLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.8.9.10": true, "::1": true, "[::1]": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.1": false, "example.com": false, "localhost.example.com": false,
		"foo.localhost": false, "::ffff:10.0.0.1": false,
	} {
		if got := Loopback(host); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestLoopbackHostPort(t *testing.T) {
	for hp, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:443": true, "localhost:80": true, "localhost": true, "127.0.0.1": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "@": false, "": false, "10.1.2.3:5432": false,
	} {
		if got := LoopbackHostPort(hp); got != want {
			t.Errorf("LoopbackHostPort(%q) = %v, want %v", hp, got, want)
		}
	}
}
