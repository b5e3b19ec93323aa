package kafkadist

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// mtime is the fixed modification time of every tarball entry, so that the
// same inputs always give the same bytes (and the same sha512).
var mtime = time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)

// writeTarGz packs base/top (entries in lexical order, root-owned, fixed
// mtimes, modes 0755/0644) into a gzip'd tarball at dst and returns the
// lower-case hex sha512 of the bytes written.
func writeTarGz(dst, base, top string) (sum string, err error) {
	out, err := os.Create(dst)
	if err != nil {
		return "", err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	h := sha512.New()
	// Jars are already compressed: the fastest level loses almost nothing.
	gz, err := gzip.NewWriterLevel(io.MultiWriter(out, h), gzip.BestSpeed)
	if err != nil {
		return "", err
	}
	tw := tar.NewWriter(gz)
	err = filepath.WalkDir(filepath.Join(base, top), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(base, p)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: mtime, Mode: 0o644, Typeflag: tar.TypeReg}
		info, err := e.Info()
		if err != nil {
			return err
		}
		switch {
		case e.IsDir():
			hdr.Name += "/"
			hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
		case !info.Mode().IsRegular():
			return fmt.Errorf("%s: not a regular file", p)
		case info.Mode()&0o111 != 0:
			hdr.Mode = 0o755
			fallthrough
		default:
			hdr.Size = info.Size()
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return "", err
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := gz.Close(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// formatSHA512File renders a digest the way `gpg --print-md sha512 NAME`
// prints it, which is the format of Apache's .sha512 files: "NAME: " then
// upper-case groups of 4 bytes, wrapped before column 80 with continuation
// lines indented to align under the first group (gnupg's print_hex).
func formatSHA512File(name, hexSum string) string {
	var b strings.Builder
	indent := len(name) + 2
	b.WriteString(name + ": ")
	if indent > 40 {
		b.WriteString("\n")
		indent = 0
	}
	sum := strings.ToUpper(hexSum)
	count := indent
	for i := 0; i+8 <= len(sum); i += 8 {
		if i > 0 {
			if count+8 > 79 {
				// gpg prints "%*s" of " ": at least one space.
				b.WriteString("\n" + strings.Repeat(" ", max(indent, 1)))
				count = indent
			} else {
				b.WriteString(" ")
				count++
			}
		}
		b.WriteString(sum[i : i+8])
		count += 8
	}
	b.WriteString("\n")
	return b.String()
}

// parseSHA512File reads an Apache .sha512 file: the text after ": ", with
// whitespace dropped, lower-cased.
func parseSHA512File(data []byte) (string, error) {
	_, after, ok := strings.Cut(string(data), ": ")
	if !ok {
		return "", errors.New(`no ": " in sha512 file`)
	}
	sum := strings.ToLower(strings.Join(strings.Fields(after), ""))
	if _, err := hex.DecodeString(sum); err != nil || len(sum) != 128 {
		return "", fmt.Errorf("bad sha512 %q", sum)
	}
	return sum, nil
}
