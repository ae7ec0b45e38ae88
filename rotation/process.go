package rotation

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ProcessID names this process where other processes must recognise it:
// in run leases and as its job queue client (River's leader table). The
// form is HOST/pid-N/ID, so that a message can say which host and process
// a service or an executing CLI is.
func ProcessID() string {
	processOnce.Do(func() {
		host, _ := os.Hostname()
		if host == "" {
			host = "unknown-host"
		}
		if len(host) > 60 {
			host = host[:60]
		}
		processID = fmt.Sprintf("%s/pid-%d/%s", host, os.Getpid(), NewID(time.Now())[10:])
	})
	return processID
}

var (
	processOnce sync.Once
	processID   string
)

// Process is a process named by ProcessID.
type Process struct {
	Host string
	PID  int
	ID   string
}

// ParseProcess reads a ProcessID; ok is false for names of other forms
// (River's default client ids).
func ParseProcess(id string) (Process, bool) {
	parts := strings.Split(id, "/")
	if len(parts) != 3 || !strings.HasPrefix(parts[1], "pid-") {
		return Process{ID: id}, false
	}
	pid, err := strconv.Atoi(strings.TrimPrefix(parts[1], "pid-"))
	if err != nil {
		return Process{ID: id}, false
	}
	return Process{Host: parts[0], PID: pid, ID: id}, true
}

// String describes the process for messages: "HOST (pid N)".
func (p Process) String() string {
	if p.Host == "" {
		return p.ID
	}
	return fmt.Sprintf("%s (pid %d)", p.Host, p.PID)
}
