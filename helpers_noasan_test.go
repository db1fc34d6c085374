//go:build !asan

package sslsession_test

const asanBuild = false
