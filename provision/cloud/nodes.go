package cloud

import (
	"fmt"
	"sort"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TagNode is the node number (1..N) on a cluster's instance, its volume,
// its network interface and the Elastic IP kafkaup allocated for it. An
// instance without it (made before clusters) is node 1.
const TagNode = "kafkaup:node"

// MaxNodes is the largest cluster create makes: every node is a KRaft
// controller, and a quorum beyond 9 voters only slows its writes.
const MaxNodes = 9

// Ports of a cluster's own traffic between its nodes: the controllers
// (9093) and the brokers' INTERNAL listener (9094). The security group
// admits them only from itself.
const (
	ControllerPort = 9093
	InternalPort   = 9094
)

// CheckNodeCount says whether a cluster of n nodes (every one a
// controller) makes sense: 1, or an odd number up to MaxNodes. An even
// count adds a node that can fail without adding a failure the quorum
// survives (a majority of 2 is 2, of 4 is 3).
func CheckNodeCount(n int) error {
	switch {
	case n < 1:
		return requestErrorf("--nodes %d: a cluster has at least one node", n)
	case n > MaxNodes:
		return requestErrorf("--nodes %d: kafkaup makes clusters of at most %d nodes (every node is a KRaft controller, and a larger quorum only slows its writes)", n, MaxNodes)
	case n > 1 && n%2 == 0:
		return requestErrorf("--nodes %d: every node is a KRaft controller, and the quorum needs a majority of them (%d of %d) to serve, so %d nodes survive no more failures than %d. Use --nodes %d (or %d)",
			n, n/2+1, n, n, n-1, n-1, n+1)
	}
	return nil
}

// Placement is where one node's instance is launched.
type Placement struct {
	SubnetID string `json:"subnet_id"`
	Zone     string `json:"zone"`
}

// place lays the nodes over the candidate subnets (sorted by zone), one
// per node in turn: distinct zones while there are enough, then round
// robin.
func (p *plan) place(cands []Placement) {
	p.placements = make([]Placement, p.req.Nodes)
	for i := range p.placements {
		p.placements[i] = cands[i%len(cands)]
	}
	p.subnetID, p.zone = p.placements[0].SubnetID, p.placements[0].Zone
}

// SharedZones tells whether placements put two nodes in one zone (the
// region has fewer zones than nodes, or --subnet put them all in one).
func SharedZones(ps []Placement) bool {
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.Zone] {
			return true
		}
		seen[p.Zone] = true
	}
	return false
}

// nodeTag is the kafkaup:node tag of node n (1-based).
func nodeTag(n int) types.Tag {
	return types.Tag{Key: aws.String(TagNode), Value: aws.String(strconv.Itoa(n))}
}

// nodeOf is the node number a resource's tags name (1 when untagged).
func nodeOf(tags []types.Tag) int {
	n, err := strconv.Atoi(tagValue(tags, TagNode))
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// selfRules admit the cluster's own traffic (controllers and replication)
// from the group itself: only the nodes' network interfaces, whatever
// their private addresses.
func selfRules(sgID string) []rule {
	return []rule{{proto: "tcp", from: ControllerPort, to: InternalPort, source: "sg:" + sgID}}
}

// liveByNode groups a broker's instances that are not terminating by
// node. Two for one node is an error: create made one per node.
func liveByNode(name string, insts []Instance) (map[int]Instance, error) {
	out := map[int]Instance{}
	for _, i := range insts {
		if i.State == "shutting-down" {
			continue
		}
		if was, ok := out[i.Node]; ok {
			return nil, fmt.Errorf("broker %s has two instances for node %d (%s, %s); kafkaup runs one per node: destroy it and create it again", name, i.Node, was.ID, i.ID)
		}
		out[i.Node] = i
	}
	return out, nil
}

// sortByNode orders brokers by node number.
func sortByNode(bs []*Broker) {
	sort.Slice(bs, func(a, b int) bool { return bs[a].Node < bs[b].Node })
}
