//go:build asan

package sslsession_test

// Under AddressSanitizer freed memory is quarantined: addresses are not
// reused at once.
const asanBuild = true
