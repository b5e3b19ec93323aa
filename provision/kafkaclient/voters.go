package kafkaclient

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ControllerEndpoint is where a controller listens for the quorum: the
// listener's name (CONTROLLER) and its host and port.
type ControllerEndpoint struct {
	Listener string
	Host     string
	Port     uint16
}

// VoterChangeError is the quorum refusing a voter change, with Kafka's
// error (kerr) and message.
type VoterChangeError struct {
	Op          string // "add" or "remove"
	ID          int32
	DirectoryID string
	Err         error
	Message     string
}

func (e *VoterChangeError) Error() string {
	return fmt.Sprintf("%s voter %d (directory id %s): %v%s", e.Op, e.ID, e.DirectoryID, e.Err, brokerMessage(&e.Message))
}

func (e *VoterChangeError) Unwrap() error { return e.Err }

// Retriable says the change may succeed if sent again later (no leader
// yet, another change under way, a new voter not caught up).
func (e *VoterChangeError) Retriable() bool {
	return kerr.IsRetriable(e.Err) || e.Err == kerr.RequestTimedOut
}

// AddVoter adds a running controller (an observer of the metadata quorum)
// as a voter: what kafka-metadata-quorum.sh add-controller does, with the
// id, directory id and listener that tool reads from the node's config.
// It returns once the new voter set is committed.
func (c *Client) AddVoter(ctx context.Context, id int32, directoryID string, ep ControllerEndpoint) error {
	dir, err := ParseUUID(directoryID)
	if err != nil {
		return err
	}
	req := kmsg.NewPtrAddRaftVoterRequest()
	req.TimeoutMillis = int32(voterChangeTimeout / time.Millisecond)
	req.VoterID, req.VoterDirectoryID, req.AckWhenCommitted = id, dir, true
	l := kmsg.NewAddRaftVoterRequestListener()
	l.Name, l.Host, l.Port = ep.Listener, ep.Host, ep.Port
	req.Listeners = append(req.Listeners, l)
	resp, err := req.RequestWith(ctx, c.cl)
	if err != nil {
		return fmt.Errorf("ask %s to add voter %d: %w", c.bootstrap, id, err)
	}
	return voterChangeErr("add", id, directoryID, resp.ErrorCode, resp.ErrorMessage)
}

// RemoveVoter removes voter id with its directory id from the metadata
// quorum: what kafka-metadata-quorum.sh remove-controller does.
func (c *Client) RemoveVoter(ctx context.Context, id int32, directoryID string) error {
	dir, err := ParseUUID(directoryID)
	if err != nil {
		return err
	}
	req := kmsg.NewPtrRemoveRaftVoterRequest()
	req.VoterID, req.VoterDirectoryID = id, dir
	resp, err := req.RequestWith(ctx, c.cl)
	if err != nil {
		return fmt.Errorf("ask %s to remove voter %d: %w", c.bootstrap, id, err)
	}
	return voterChangeErr("remove", id, directoryID, resp.ErrorCode, resp.ErrorMessage)
}

// voterChangeTimeout bounds how long the quorum leader may take to commit
// a voter change before answering REQUEST_TIMED_OUT.
const voterChangeTimeout = 30 * time.Second

func voterChangeErr(op string, id int32, dir string, code int16, msg *string) error {
	err := kerr.ErrorForCode(code)
	if err == nil {
		return nil
	}
	e := &VoterChangeError{Op: op, ID: id, DirectoryID: dir, Err: err}
	if msg != nil {
		e.Message = *msg
	}
	return e
}
