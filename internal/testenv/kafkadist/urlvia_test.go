package kafkadist

import (
	"strconv"
	"testing"
)

func TestURLVia(t *testing.T) {
	m, err := StartMirror(nil, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	want := "http://10.0.2.2:" + strconv.Itoa(m.Port(0)) + "/kafka/4.0.1/kafka_2.13-4.0.1.tgz"
	if got := m.URLVia(0, "10.0.2.2", "4.0.1"); got != want {
		t.Errorf("URLVia = %s, want %s", got, want)
	}
}
