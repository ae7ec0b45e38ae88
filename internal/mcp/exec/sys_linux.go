package exec

import "syscall"

// sysProcAttr asks the kernel to send the child SIGTERM should exec die
// without stopping it (killed with SIGKILL), so no server outlives it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
