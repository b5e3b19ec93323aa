package state

import (
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// PublicHostKeys parses the node's recorded host keys (nil when there are
// none).
func (n Node) PublicHostKeys() ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	for _, line := range n.HostKeys {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("the recorded SSH host key %q of node %d is damaged (%v): rerun kafkaup reprovision to read it again from the instance's console", line, n.ID, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// SetHostKeys records keys as the node's host keys.
func (n *Node) SetHostKeys(keys []ssh.PublicKey) {
	n.HostKeys = nil
	for _, k := range keys {
		n.HostKeys = append(n.HostKeys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))))
	}
}
