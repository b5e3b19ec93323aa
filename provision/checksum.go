package provision

import (
	"errors"
	"strings"
)

// ParseSHA512File reads a .sha512 checksum file and returns its digest as
// lower-case hex. It is kafkaup's one reader of that format, for a local
// tarball's sidecar file and for the file a host fetches from a mirror or
// from Apache. Two layouts are read:
//
//   - sha512sum's: "00722ab0...  kafka_2.13-4.0.0.tgz" (or the digest alone);
//   - Apache's, which is `gpg --print-md sha512` output: the file name, ": ",
//     then the digest in upper-case groups of 8 hex digits, wrapped over
//     several lines ("kafka_2.13-4.0.0.tgz: 00722AB0 A6B954E0 ...").
//
// Anything that does not give exactly 128 hex digits is an error.
func ParseSHA512File(text string) (string, error) {
	fields := strings.Fields(text)
	if len(fields) > 0 && sha512RE.MatchString(strings.ToLower(fields[0])) {
		return strings.ToLower(fields[0]), nil
	}
	if _, after, ok := strings.Cut(text, ": "); ok {
		if sum := strings.ToLower(strings.Join(strings.Fields(after), "")); sha512RE.MatchString(sum) {
			return sum, nil
		}
	}
	return "", errors.New(`no sha512 digest in it: expected 128 hex digits, as in Apache's "NAME: 00722AB0 A6B954E0 ..." or sha512sum's "00722ab0a6b954e0...  NAME"`)
}
