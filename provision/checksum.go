package provision

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kafkaup/kafkaup/scripts"
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

// withFetchedSHA512 is the kafka step's Resolve for a download with no
// digest given: fetch-kafka.sh gets the digest read from the release's
// checksum file.
func withFetchedSHA512(fetch scripts.FetchKafka, urls []string) func(context.Context, Host) (scripts.Script, error) {
	return func(ctx context.Context, h Host) (scripts.Script, error) {
		sum, err := fetchSHA512(ctx, h, fetch.DistName, urls)
		if err != nil {
			return nil, err
		}
		fetch.ExpectedSHA512 = sum
		return fetch, nil
	}
}

// fetchSHA512 gets the digest of the release dist from the first of urls
// whose checksum file the host can download (fetch-checksum.sh, with its
// retries and backoff) and that holds a digest; the others are tried in
// order. The host only downloads: the text is read here.
func fetchSHA512(ctx context.Context, h Host, dist string, urls []string) (string, error) {
	var failed []string
	for _, u := range urls {
		script, err := scripts.Render(scripts.FetchChecksum{URL: u, DownloadRetries: DownloadRetries})
		if err != nil {
			return "", err
		}
		out, err := h.RunScript(ctx, "fetch-checksum", script)
		var advice interface{ Advice() string } // a *remote.ProcessError from die: the reason
		switch {
		case err == nil:
			sum, perr := ParseSHA512File(string(out))
			if perr == nil {
				return sum, nil
			}
			failed = append(failed, u+" (not a sha512 file)")
		case errors.As(err, &advice) && advice.Advice() != "":
			failed = append(failed, u+" ("+advice.Advice()+")")
		default: // the connection or the script broke: not this source's fault
			return "", fmt.Errorf("fetch the sha512 checksum from %s: %w", u, err)
		}
	}
	return "", fmt.Errorf("could not get the sha512 checksum of %s: %s. Nothing was installed. Check that the host can reach it, or pass --kafka-sha512 with the digest from the Apache download page.", dist, strings.Join(failed, " "))
}
