// Command genconfig writes a large, realistic configuration file and the
// runbooks it links, for measuring `rotator apply` (docs/benchmarks.md):
//
//	go run ./internal/testconfig/genconfig -n 100000 -dir /tmp/big
//	rotator apply -f /tmp/big/big.yaml
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/rotatorhq/rotator/internal/testconfig"
)

func main() {
	n := flag.Int("n", 100_000, "number of credentials")
	dir := flag.String("dir", ".", "directory to write the file and runbooks/ in")
	name := flag.String("name", "big.yaml", "file name of the configuration")
	flag.Parse()
	path, err := testconfig.WriteFiles(*dir, *name, *n)
	if err != nil {
		fmt.Fprintln(os.Stderr, "genconfig:", err)
		os.Exit(1)
	}
	st, err := os.Stat(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "genconfig:", err)
		os.Exit(1)
	}
	fmt.Printf("%s: %d credentials, %d bytes\n", path, *n, st.Size())
}
