package main

import (
	"io"
	"os"
)

// maxInputFile bounds every file the command reads: a session (at most a
// few hundred KiB of DER, a third more as PEM), a client certificate or
// key, a reference report. A larger file, or one without end (/dev/zero, a
// pipe that never closes), is refused after maxInputFile+1 bytes.
const maxInputFile = 1 << 20

// readInput reads the file name, what (e.g. "session file") naming it in
// the error when it is larger than maxInputFile.
func readInput(name, what string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fileError(err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > maxInputFile {
		return nil, tooLarge(name, what)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxInputFile+1))
	if err != nil {
		return nil, fileError(err)
	}
	if len(data) > maxInputFile {
		return nil, tooLarge(name, what)
	}
	return data, nil
}

func tooLarge(name, what string) error {
	return usageError("%s is larger than 1 MiB, the limit for a %s", name, what)
}
