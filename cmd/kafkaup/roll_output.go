package main

import (
	"fmt"
	"io"
	"time"

	"github.com/kafkaup/kafkaup/provision/workflow"
)

// printRestart prints what a (rolling) restart did, node by node.
func printRestart(w io.Writer, out *workflow.RollOutcome, err error) {
	if out == nil {
		return
	}
	if len(out.Nodes) == 1 && err == nil {
		fmt.Fprintf(w, "broker %s restarted in %s\n", out.Name, out.Took.Round(100*time.Millisecond))
		return
	}
	printRoll(w, out.Nodes)
	if err == nil {
		fmt.Fprintf(w, "rolling restart of %s done in %s\n", out.Name, out.Took.Round(100*time.Millisecond))
	}
}

// printRoll prints one line per node a roll went through, in the order
// the roll took them (rolled nodes by their role, skipped ones after).
func printRoll(w io.Writer, nodes []workflow.RolledNode) {
	for _, n := range nodes {
		switch {
		case n.Skipped:
			fmt.Fprintf(w, "node %d (%s): nothing to change, not restarted\n", n.ID, n.Host)
		case n.Role == "":
			fmt.Fprintf(w, "node %d (%s): not reached\n", n.ID, n.Host)
		case n.Restarted:
			fmt.Fprintf(w, "node %d (%s, %s): restarted and back in sync in %s\n", n.ID, n.Host, n.Role, n.Took.Round(100*time.Millisecond))
		default:
			fmt.Fprintf(w, "node %d (%s, %s): changed without a restart in %s\n", n.ID, n.Host, n.Role, n.Took.Round(100*time.Millisecond))
		}
	}
}
