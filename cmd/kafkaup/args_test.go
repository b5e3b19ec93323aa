package main

import (
	"reflect"
	"testing"
)

func TestFlagsFirst(t *testing.T) {
	app := newApp()
	cases := map[string]struct{ in, want []string }{
		"flags after positionals": {
			[]string{"kafkaup", "topics", "create", "dev", "orders", "--partitions", "3", "--config", "a=b", "-r", "1"},
			[]string{"kafkaup", "topics", "create", "--partitions", "3", "--config", "a=b", "-r", "1", "dev", "orders"},
		},
		"bool flag takes no value": {
			[]string{"kafkaup", "logs", "dev", "-f", "--lines", "5"},
			[]string{"kafkaup", "logs", "-f", "--lines", "5", "dev"},
		},
		"double dash keeps the remote command": {
			[]string{"kafkaup", "ssh", "dev", "--", "ls", "-la"},
			[]string{"kafkaup", "ssh", "dev", "--", "ls", "-la"},
		},
		"flag=value form": {
			[]string{"kafkaup", "consume", "dev", "t", "--max=2"},
			[]string{"kafkaup", "consume", "--max=2", "dev", "t"},
		},
		"already in order": {
			[]string{"kafkaup", "provision", "--host", "h", "--json"},
			[]string{"kafkaup", "provision", "--host", "h", "--json"},
		},
		"global flags": {[]string{"kafkaup", "--version"}, []string{"kafkaup", "--version"}},
	}
	for name, c := range cases {
		if got := flagsFirst(app, c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %q, want %q", name, got, c.want)
		}
	}
}
