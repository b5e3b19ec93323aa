package state

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSaveLoadListDelete(t *testing.T) {
	dir := t.TempDir()
	b := Broker{Name: "dev", Host: "203.0.113.10", Port: 22, User: "ubuntu", AdvertisedHost: "203.0.113.10", Heap: "400m"}
	if err := Save(dir, b); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "brokers", "dev.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("record mode %v, %v", st.Mode(), err)
	}
	got, err := Load(dir, "dev")
	if err != nil || got.Host != b.Host || got.Created.IsZero() {
		t.Fatalf("load: %+v, %v", got, err)
	}
	if got.Bootstrap() != "203.0.113.10:9092" {
		t.Errorf("bootstrap %s", got.Bootstrap())
	}
	created := got.Created
	got.Heap = "512m"
	if err := Save(dir, got); err != nil {
		t.Fatal(err)
	}
	again, _ := Load(dir, "dev")
	if !again.Created.Equal(created) || again.Heap != "512m" {
		t.Errorf("update lost fields: %+v", again)
	}
	Save(dir, Broker{Name: "another", Host: "h"})
	all, err := List(dir)
	if err != nil || len(all) != 2 || all[0].Name != "another" {
		t.Fatalf("list: %+v, %v", all, err)
	}
	if _, err := SaveKey(dir, "dev", []byte("KEY")); err != nil {
		t.Fatal(err)
	}
	if err := Delete(dir, "dev"); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, "dev"); !errors.Is(err, ErrNoBroker) {
		t.Errorf("after delete: %v", err)
	}
	if _, err := os.Stat(KeyPath(dir, "dev")); !os.IsNotExist(err) {
		t.Error("key left behind")
	}
}

func TestNames(t *testing.T) {
	for _, bad := range []string{"", "Dev", "1abc", "a_b", "a b", "../x", "a.b", "abcdefghijabcdefghijabcdefghijabcdefghijx"} {
		if ValidateName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for host, want := range map[string]string{"203.0.113.10": "host-203-0-113-10", "Kafka.Example.com": "kafka-example-com", "::1": "host-1"} {
		if got := NameForHost(host); got != want || ValidateName(got) != nil {
			t.Errorf("NameForHost(%q) = %q, want %q", host, got, want)
		}
	}
}
