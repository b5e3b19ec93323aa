package remote

import (
	"bytes"
	"io"
	"io/fs"
)

// tailWriter keeps the last max bytes written and copies complete lines to
// log with a prefix.
type tailWriter struct {
	max    int
	log    io.Writer
	prefix string
	buf    []byte // kept tail
	line   []byte // partial line not yet logged
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = w.buf[len(w.buf)-w.max:]
	}
	if w.log != nil {
		w.line = append(w.line, p...)
		for {
			i := bytes.IndexByte(w.line, '\n')
			if i < 0 {
				break
			}
			_, _ = w.log.Write(append([]byte(w.prefix), w.line[:i+1]...))
			w.line = w.line[i+1:]
		}
	}
	return len(p), nil
}

func (w *tailWriter) flush() {
	if w.log != nil && len(w.line) > 0 {
		_, _ = w.log.Write(append(append([]byte(w.prefix), w.line...), '\n'))
		w.line = nil
	}
}

// tail returns the last 20 lines kept.
func (w *tailWriter) tail() string {
	lines := bytes.Split(bytes.TrimRight(w.buf, "\n"), []byte("\n"))
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func osMode(m uint32) fs.FileMode { return fs.FileMode(m) }
