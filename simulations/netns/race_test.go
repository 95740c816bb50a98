//go:build linux && race

package netns

const raceEnabled = true
