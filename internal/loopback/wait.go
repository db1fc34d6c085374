package loopback

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// ErrExited is WaitListening's error when the process meant to listen
// ended first.
var ErrExited = errors.New("loopback: the server exited before listening")

// WaitListening waits until a server accepts TCP connections on addr, for
// at most timeout, or until exited (which may be nil) is closed.
//
// A dial to a free loopback port in the ephemeral range can connect to
// itself (TCP simultaneous open: the kernel picks the destination port as
// the source port), which would report a server that is not there yet;
// such a connection does not count.
func WaitListening(addr string, timeout time.Duration, exited <-chan struct{}) error {
	var last error
	for stop := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			return fmt.Errorf("%w: %s", ErrExited, addr)
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			self := c.LocalAddr().String() == c.RemoteAddr().String()
			_ = c.Close()
			if !self {
				return nil
			}
			err = errors.New("connected to itself")
		}
		last = err
		if time.Now().After(stop) {
			return fmt.Errorf("loopback: nothing listens on %s after %s: %w", addr, timeout, last)
		}
	}
}
