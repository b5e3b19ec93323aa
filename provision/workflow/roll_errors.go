package workflow

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kafkaup/kafkaup/provision/kafkaclient"
)

// GateError says why the cluster is not healthy enough to take a node
// down: partitions not fully replicated, or too few voters caught up.
type GateError struct {
	Name            string
	Node            int32 // the node that was to go down next
	UnderReplicated []kafkaclient.TopicPartition
	UnderMinISR     []kafkaclient.TopicPartition
	Offline         []kafkaclient.TopicPartition
	Missing         map[int32]int // broker id -> partitions whose ISR lacks it
	Leader          int32
	Voters          int
	Lagging         []kafkaclient.QuorumReplica // voters not caught up with the leader
	QuorumShort     bool                        // without Node, fewer than a majority of voters are caught up
}

// summary is the problems in one line.
func (g *GateError) summary() string {
	var parts []string
	if n := len(g.Offline); n > 0 {
		parts = append(parts, fmt.Sprintf("%d partitions offline (%s)", n, listPartitions(g.Offline, 5)))
	}
	if n := len(g.UnderMinISR); n > 0 {
		parts = append(parts, fmt.Sprintf("%d partitions under min.insync.replicas (%s)", n, listPartitions(g.UnderMinISR, 5)))
	}
	if n := len(g.UnderReplicated); n > 0 {
		s := fmt.Sprintf("%d partitions under-replicated (%s)", n, listPartitions(g.UnderReplicated, 5))
		if b := g.missingBrokers(); b != "" {
			s += "; missing from their ISR: " + b
		}
		parts = append(parts, s)
	}
	if g.QuorumShort {
		var lag []string
		for _, v := range g.Lagging {
			ago := "never"
			if v.LastCaughtUpAgo >= 0 {
				ago = v.LastCaughtUpAgo.Round(time.Second).String() + " ago"
			}
			lag = append(lag, fmt.Sprintf("voter %d (%d records behind, last caught up %s)", v.ID, v.Lag, ago))
		}
		parts = append(parts, fmt.Sprintf("without node %d too few of the %d controllers are caught up with the leader (node %d): %s",
			g.Node, g.Voters, g.Leader, strings.Join(lag, ", ")))
	}
	return strings.Join(parts, "; ")
}

// missingBrokers names the brokers missing from some ISR, most first.
func (g *GateError) missingBrokers() string {
	ids := make([]int32, 0, len(g.Missing))
	for id := range g.Missing {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var out []string
	for _, id := range ids {
		out = append(out, fmt.Sprintf("node %d (%d partitions)", id, g.Missing[id]))
	}
	return strings.Join(out, ", ")
}

func (g *GateError) Error() string {
	advice := fmt.Sprintf("kafkaup status %s shows which node is down or behind; start a stopped broker with kafkaup broker start %s --node N, wait until status is healthy, then run this command again", g.Name, g.Name)
	if ids := g.missingIDs(); len(ids) == 1 {
		advice = fmt.Sprintf("node %d is down or behind: start its broker if it is stopped (kafkaup broker start %s --node %d), look at kafkaup logs %s --node %d if it does not catch up, and run this command again once kafkaup status %s is healthy",
			ids[0], g.Name, ids[0], g.Name, ids[0], g.Name)
	}
	return fmt.Sprintf("the cluster is not healthy enough to take node %d down: %s. Restarting a node now could stop acks=all writes (partitions below min.insync.replicas) or the controller quorum. %s",
		g.Node, g.summary(), advice)
}

// missingIDs are the brokers that lag, from the ISRs and the quorum.
func (g *GateError) missingIDs() []int32 {
	var ids []int32
	for id := range g.Missing {
		ids = append(ids, id)
	}
	if g.QuorumShort {
		for _, v := range g.Lagging {
			if !slices.Contains(ids, v.ID) {
				ids = append(ids, v.ID)
			}
		}
	}
	slices.Sort(ids)
	return ids
}

// RollRefusedError is a roll that did not start: the cluster was not
// healthy before the first node, and nothing was changed.
type RollRefusedError struct {
	Name string
	Verb string
	Err  error
}

func (e *RollRefusedError) Error() string {
	return fmt.Sprintf("the rolling %s of %s did not start, and no node was changed: %v", e.Verb, e.Name, e.Err)
}

func (e *RollRefusedError) Unwrap() error { return e.Err }

// RollStoppedError is a roll that stopped partway: the nodes before Node
// are done, Node failed (to change, or to come back), and the rest were
// not touched. The cluster still serves from the other nodes.
type RollStoppedError struct {
	Name      string
	Verb      string
	Node      int // 0: stopped between nodes
	Host      string
	Rolled    []int
	NotRolled []int
	Err       error
}

func (e *RollStoppedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the rolling %s of %s stopped", e.Verb, e.Name)
	if e.Node != 0 {
		fmt.Fprintf(&b, " at node %d (%s)", e.Node, e.Host)
	}
	fmt.Fprintf(&b, ": %v. ", e.Err)
	if len(e.Rolled) > 0 {
		fmt.Fprintf(&b, "Done: %s. ", nodeList(e.Rolled))
	}
	if len(e.NotRolled) > 0 {
		fmt.Fprintf(&b, "Not touched: %s. ", nodeList(e.NotRolled))
	}
	b.WriteString("The other nodes keep serving. ")
	if e.Node != 0 {
		fmt.Fprintf(&b, "See kafkaup logs %s --node %d and kafkaup status %s; once the cluster is healthy, run the same command again: nodes already done are skipped or restarted once more, one at a time", e.Name, e.Node, e.Name)
	} else {
		fmt.Fprintf(&b, "Run the same command again once kafkaup status %s is healthy", e.Name)
	}
	return b.String()
}

func (e *RollStoppedError) Unwrap() error { return e.Err }

// RejoinError is a node that did not come back in time after its restart.
type RejoinError struct {
	Node       int32
	Waited     time.Duration
	State      string
	Partitions []kafkaclient.TopicPartition
}

func (e *RejoinError) Error() string {
	return fmt.Sprintf("node %d was restarted but after %s it is %s", e.Node, e.Waited, e.State)
}

func nodeList(ids []int) string {
	var s []string
	for _, id := range ids {
		s = append(s, "node "+strconv.Itoa(id))
	}
	return strings.Join(s, ", ")
}
