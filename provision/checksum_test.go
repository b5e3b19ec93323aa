package provision

import (
	"strings"
	"testing"
)

func TestParseSHA512File(t *testing.T) {
	const sum = "00722ab0a6b954e0006994b8d589dcd8f26e1827c47f70b6e820fb45aa35945c19163b0f188caf0caf976c11f7ab005fd368c54e5851e899d2de687a804a5eb9"
	upper := strings.ToUpper(sum)
	groups := func(s string) string { // "00722AB0 A6B954E0 ..." as gpg prints it
		var g []string
		for i := 0; i < len(s); i += 8 {
			g = append(g, s[i:i+8])
		}
		return strings.Join(g, " ")
	}(upper)
	cases := []struct {
		name, text, want string
	}{
		{"Apache, wrapped under the name", "kafka_2.13-4.0.0.tgz: " + groups[:53] + "\n                      " + groups[54:107] + "\n                      " + groups[108:] + "\n", sum},
		{"Apache, one line", "kafka_2.13-4.0.0.tgz: " + groups + "\n", sum},
		{"Apache, long name: digest starts on the next line", "this-is-a-rather-long-file-name-over-forty-chars.tgz: \n" + groups + "\n", sum},
		{"Apache, CRLF line ends", "kafka_2.13-4.0.0.tgz: " + groups[:53] + "\r\n  " + groups[54:] + "\r\n", sum},
		{"sha512sum", sum + "  kafka_2.13-4.0.0.tgz\n", sum},
		{"sha512sum, binary mode", sum + " *kafka_2.13-4.0.0.tgz\n", sum},
		{"sha512sum, upper case", upper + "  kafka_2.13-4.0.0.tgz\n", sum},
		{"sha512sum, a name with ': ' in it", sum + "  odd: name.tgz\n", sum},
		{"the digest alone", sum + "\n", sum},
		{"empty", "", ""},
		{"an HTML error page", "<html><head><title>404 Not Found</title></head>\n<body>Not Found: kafka_2.13-4.0.0.tgz.sha512</body></html>\n", ""},
		{"digest cut short", "kafka_2.13-4.0.0.tgz: " + groups[:80] + "\n", ""},
		{"digest too long", sum + "00  kafka_2.13-4.0.0.tgz\n", ""},
		{"not hex", "kafka_2.13-4.0.0.tgz: " + strings.Repeat("ZZZZZZZZ ", 16) + "\n", ""},
		{"a sha256 file", strings.Repeat("ab", 32) + "  kafka_2.13-4.0.0.tgz\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseSHA512File(c.text)
			if c.want == "" {
				if err == nil || got != "" {
					t.Errorf("= %q, %v; want an error", got, err)
				} else if !strings.Contains(err.Error(), "128 hex digits") {
					t.Errorf("error %q does not say what is expected", err)
				}
				return
			}
			if err != nil || got != c.want {
				t.Errorf("= %q, %v; want %q", got, err, c.want)
			}
		})
	}
}
