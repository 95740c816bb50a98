//go:build !unix

package control

// haveUmask: this platform has no umask; Listen chmods the socket instead.
const haveUmask = false

func setUmask(int) int { return 0 }
