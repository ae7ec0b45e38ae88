//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package sqlite

import "os"

// tryLock does not lock on this system: processes started together on a
// new database may both apply the first migrations, and all but one fail.
func tryLock(*os.File) (bool, error) { return true, nil }

// fileLocks says whether tryLock locks.
const fileLocks = false
