// Package nldump runs netlink dumps that the kernel may interrupt.
package nldump

import (
	"errors"

	"github.com/vishvananda/netlink"
)

// Retry repeats a netlink dump the kernel interrupted because the table
// changed under it (up to five times); the result is then consistent.
func Retry(f func() error) error {
	var err error
	for range 5 {
		if err = f(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return err
		}
	}
	return err
}
