// Command rotator rotates the credentials of MCP servers and clients. See
// `rotator --help` and README.md.
package main

import "os"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }
