package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/secrets"
	"github.com/kafkaup/kafkaup/provision/workflow"
)

// clusterOutput is what provision prints for a cluster of several nodes.
type clusterOutput struct {
	Name      string                    `json:"name"`
	Bootstrap string                    `json:"bootstrap"`
	ClusterID string                    `json:"cluster_id,omitempty"`
	Nodes     []nodeOutput              `json:"nodes"`
	Verified  *kafkaclient.Verification `json:"verified,omitempty"`
	Client    *secrets.ClientFiles      `json:"client,omitempty"`
	Roll      []workflow.RolledNode     `json:"roll,omitempty"`
	Finalize  *workflow.Finalize        `json:"finalize,omitempty"`
}

// nodeOutput is one node's run.
type nodeOutput struct {
	ID int `json:"id"`
	*provision.Result
	Error string `json:"error,omitempty"`
}

func printCluster(c *cli.Context, out *workflow.Outcome, err error) error {
	co := clusterOutput{Name: out.Name, Bootstrap: out.Bootstrap, ClusterID: out.Spec.ClusterID, Verified: out.Verified, Client: out.Client,
		Roll: out.Roll, Finalize: out.Finalize}
	for _, n := range out.Nodes {
		no := nodeOutput{ID: n.ID, Result: n.Result}
		if no.Result == nil {
			no.Result = &provision.Result{Host: n.Host, Bootstrap: n.Spec.Bootstrap()}
		}
		if n.Err != nil {
			no.Error = n.Err.Error()
		}
		co.Nodes = append(co.Nodes, no)
	}
	if c.Bool("json") {
		if jerr := writeJSON(c.App.Writer, co, err); jerr != nil {
			return jerr
		}
		return err
	}
	printClusterResult(c.App.Writer, co, out.Spec, err)
	return err
}

func printClusterResult(w io.Writer, co clusterOutput, spec provision.Spec, err error) {
	var warnings []string
	warned := map[string]bool{}
	for _, n := range co.Nodes {
		res, who := n.Result, fmt.Sprintf("node %d (%s)", n.ID, n.Host)
		switch {
		case res.DryRun && len(res.Plan) == 0 && n.Error == "":
			fmt.Fprintf(w, "%s is already as specified: nothing to do.\n", who)
		case res.DryRun && n.Error == "":
			fmt.Fprintf(w, "Plan for %s (dry run, nothing changed):\n", who)
			for i, st := range res.Plan {
				fmt.Fprintf(w, "  %d. %-8s %s  [%s]\n", i+1, st.ID, st.Title, st.Reason)
			}
		case res.DryRun:
		case len(res.Plan) == 0 && res.Facts.OSID != "" && n.Error == "":
			fmt.Fprintf(w, "%s was already as specified: nothing changed.\n", who)
		case len(res.Applied) > 0:
			var done []string
			for _, a := range res.Applied {
				if a.Error == "" {
					done = append(done, a.ID)
				}
			}
			fmt.Fprintf(w, "Applied on %s: %s\n", who, strings.Join(done, ", "))
		}
		for _, warn := range res.Warnings {
			if !warned[warn] && !res.DryRun {
				warnings = append(warnings, warn)
				warned[warn] = true
			}
		}
	}
	for _, warn := range warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	if len(co.Roll) > 0 {
		fmt.Fprintln(w, "Rolling, one node at a time:")
		printRoll(w, co.Roll)
	}
	if co.Finalize != nil {
		fmt.Fprintln(w, co.Finalize.Message)
	}
	if err != nil || (len(co.Nodes) > 0 && co.Nodes[0].DryRun) {
		return
	}
	fmt.Fprintf(w, "Kafka %s is running on %d nodes, each a broker and a controller (cluster id %s).\n", spec.KafkaVersion, len(co.Nodes), co.ClusterID)
	if v := co.Verified; v != nil {
		fmt.Fprintf(w, "Verified from here: the cluster lists %d brokers (%s); a record produced with acks=all came back in %s.\n",
			len(v.Advertised), strings.Join(v.Advertised, ", "), v.RoundTrip)
	}
	fmt.Fprintf(w, "Topics get %d replicas by default, and an acks=all write needs %d in sync.\n",
		provision.ReplicationFactor(len(co.Nodes)), provision.MinInSyncReplicas(len(co.Nodes)))
	printTryIt(w, co.Bootstrap, co.Client, co.Name)
}

// printClusterStatus is status for a cluster of several nodes: a row per
// node, the quorum's voters, the partitions' health, then the problems.
func printClusterStatus(w io.Writer, st *workflow.Status) {
	health := "healthy"
	if !st.Healthy {
		health = "UNHEALTHY"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "cluster\t%s (%s), %d nodes\n", st.Name, health, len(st.Nodes))
	fmt.Fprintf(tw, "bootstrap\t%s\n", st.Bootstrap)
	fmt.Fprintf(tw, "clients use\t%s\n", st.Security)
	if st.Cluster != nil {
		fmt.Fprintf(tw, "cluster id\t%s\n", st.Cluster.ClusterID)
		fmt.Fprintf(tw, "topics / partitions\t%d / %d\n", st.Cluster.Topics, st.Cluster.Partitions)
	} else {
		fmt.Fprintf(tw, "reachable from here\tno\n")
	}
	tw.Flush()
	fmt.Fprintln(w)
	printNodeRows(w, st.Nodes)
	if q := st.Quorum; q != nil {
		fmt.Fprintf(w, "\nquorum: leader node %d, epoch %d, high watermark %d\n", q.LeaderID, q.LeaderEpoch, q.HighWatermark)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "VOTER\tDIRECTORY ID\tLAG\tLAST CAUGHT UP")
		for _, v := range q.Voters {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", v.ID, v.DirectoryID, voterLag(v.Lag), caughtUpText(v, q.LeaderID))
		}
		for _, v := range q.Observers {
			fmt.Fprintf(tw, "%d (observer)\t%s\t%s\t%s\n", v.ID, v.DirectoryID, voterLag(v.Lag), caughtUpText(v, q.LeaderID))
		}
		tw.Flush()
	}
	if p := st.Partitions; p != nil {
		fmt.Fprintf(w, "\npartitions: %d under-replicated, %d under min ISR, %d offline\n", len(p.UnderReplicated), len(p.UnderMinISR), len(p.Offline))
	}
	for _, p := range st.Problems {
		fmt.Fprintf(w, "problem: %s\n", p)
	}
}

func printNodeRows(w io.Writer, nodes []workflow.NodeStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tHOST\tSSH\tKAFKA\tROLES\tQUORUM\tVERSION\tHEAP\tSWAP USED/TOTAL\tDATA USED/FREE")
	for _, n := range nodes {
		version, heap, swap, data := "-", "-", "-", "-"
		if h := n.OnHost; h != nil {
			version, heap = orDash(h.KafkaVersion), orDash(h.Heap)
			swap = provision.FormatSize(h.SwapUsedBytes) + " / " + provision.FormatSize(h.SwapTotalBytes)
			data = provision.FormatSize(h.DataUsedBytes) + " / " + provision.FormatSize(h.DataFreeBytes)
		}
		host := n.Host
		if n.Down {
			host += " (DOWN)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.ID, host, yesNo(n.SSH), yesNo(n.Kafka), n.Roles, n.Quorum, version, heap, swap, data)
	}
	tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func voterLag(lag int64) string {
	if lag < 0 {
		return "unknown"
	}
	return fmt.Sprint(lag)
}

func caughtUpText(v kafkaclient.QuorumReplica, leader int32) string {
	switch {
	case v.ID == leader && v.LastCaughtUpAgo == 0:
		return "(leader)"
	case v.LastCaughtUpAgo < 0:
		return "unknown"
	}
	return v.LastCaughtUpAgo.Round(time.Millisecond).String() + " ago"
}
