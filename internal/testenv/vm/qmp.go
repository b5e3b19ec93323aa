package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"time"
)

// qmpClient speaks QEMU's machine protocol (QMP) over the VM's monitor
// socket: JSON objects, one per line; asynchronous events are skipped.
type qmpClient struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialQMP connects to the monitor socket at path, retrying until qemu has
// created it or ctx ends (or exited is closed), and enters command mode.
func dialQMP(ctx context.Context, path string, exited <-chan struct{}) (*qmpClient, error) {
	for {
		conn, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			q := &qmpClient{conn: conn, r: bufio.NewReader(conn)}
			if _, err := q.read(ctx); err != nil { // the greeting
				conn.Close()
				return nil, fmt.Errorf("qmp greeting: %w", err)
			}
			if _, err := q.execute(ctx, "qmp_capabilities"); err != nil {
				conn.Close()
				return nil, err
			}
			return q, nil
		}
		select {
		case <-exited:
			return nil, fmt.Errorf("qemu exited before its monitor answered (%v)", err)
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to qemu's monitor %s: %w (last: %v)", path, ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// execute runs one command and returns its "return" value.
func (q *qmpClient) execute(ctx context.Context, command string) (json.RawMessage, error) {
	cmd, _ := json.Marshal(map[string]string{"execute": command})
	if dl, ok := ctx.Deadline(); ok {
		_ = q.conn.SetDeadline(dl)
	} else {
		_ = q.conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	if _, err := q.conn.Write(append(cmd, '\n')); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", command, err)
	}
	for {
		msg, err := q.read(ctx)
		if err != nil {
			return nil, fmt.Errorf("qmp %s: %w", command, err)
		}
		if msg.Event != "" {
			continue
		}
		if msg.Error != nil {
			return nil, fmt.Errorf("qmp %s: %s: %s", command, msg.Error.Class, msg.Error.Desc)
		}
		return msg.Return, nil
	}
}

type qmpMessage struct {
	QMP    json.RawMessage `json:"QMP"`
	Return json.RawMessage `json:"return"`
	Event  string          `json:"event"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
}

func (q *qmpClient) read(ctx context.Context) (qmpMessage, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = q.conn.SetReadDeadline(dl)
	}
	line, err := q.r.ReadBytes('\n')
	if err != nil {
		return qmpMessage{}, err
	}
	var m qmpMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return qmpMessage{}, fmt.Errorf("qmp: %w in %q", err, line)
	}
	return m, nil
}

func (q *qmpClient) Close() error { return q.conn.Close() }
