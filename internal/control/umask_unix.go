//go:build unix

package control

import "syscall"

// haveUmask: new files' modes are masked by the process's umask.
const haveUmask = true

// setUmask sets the process's umask and returns the previous one.
func setUmask(mask int) int { return syscall.Umask(mask) }
