package workflow

import (
	"context"
	"fmt"
	"time"

	"github.com/kafkaup/kafkaup/provision"
	"github.com/kafkaup/kafkaup/provision/kafkaclient"
	"github.com/kafkaup/kafkaup/provision/remote"
	"github.com/kafkaup/kafkaup/provision/secrets"
	"github.com/kafkaup/kafkaup/provision/state"
)

// Broker is one node of a recorded cluster, ready for day-2 work: its
// record, the spec it runs with and its client secrets.
type Broker struct {
	Record state.Cluster
	Index  int // the node's place in Record.Nodes
	Spec   provision.Spec
	Sec    *secrets.Set // the CA and login of a secured cluster; empty for PLAINTEXT
}

// Name is the cluster's name.
func (b *Broker) Name() string { return b.Record.Name }

// Node is the node this handle is for.
func (b *Broker) Node() state.Node { return b.Record.Nodes[b.Index] }

// Target is how to reach the node's host.
func (b *Broker) Target() Target { return target(b.Record, b.Index) }

// Bootstrap is the cluster's bootstrap servers list.
func (b *Broker) Bootstrap() string { return b.Record.Bootstrap() }

// Auth is how this machine logs in to the cluster.
func (b *Broker) Auth() kafkaclient.Auth { return b.Sec.Auth() }

// Open loads cluster name for day-2 work on node nodeID (0: the first).
func Open(env Env, name string, nodeID int) (*Broker, error) {
	rec, err := loadExisting(env, name)
	if err != nil {
		return nil, err
	}
	if len(rec.Nodes) == 0 {
		return nil, fmt.Errorf("the record of %s has no nodes: rerun the command that made it (kafkaup create %s, or provision --host)", name, name)
	}
	b := &Broker{Record: rec}
	if nodeID != 0 {
		if b.Index, err = rec.FindNode(nodeID); err != nil {
			return nil, input(err)
		}
	}
	if b.Spec, err = state.SpecFor(rec, b.Index); err != nil {
		return nil, err
	}
	if b.Sec, err = secrets.Load(env.StateDir, name, rec.Spec.Security); err != nil {
		return nil, err
	}
	return b, nil
}

// Dial connects to the broker's host, checking its recorded host keys.
func (b *Broker) Dial(ctx context.Context, env Env, o DialOptions) (Host, error) {
	return dialNode(ctx, env, b.Record, b.Index, o)
}

// PinHostKeys writes the node's recorded host keys (read from its
// instance's console) into kafkaup's known_hosts under its address, in
// place of older pins, for tools that read that file (OpenSSH for kafkaup
// ssh). A node with no recorded keys keeps its pins as they are.
func (b *Broker) PinHostKeys(stateDir string) error {
	n := b.Node()
	keys, err := n.PublicHostKeys()
	if err != nil || len(keys) == 0 {
		return err
	}
	return remote.PinKeys(state.KnownHostsFile(stateDir), sshAddr(n), keys)
}

// Kafka connects a Kafka client to the cluster with its security settings.
func (b *Broker) Kafka(ctx context.Context) (*kafkaclient.Client, error) {
	if err := b.Sec.Check(b.Name()); err != nil {
		return nil, err
	}
	dialCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := kafkaclient.DialWith(dialCtx, b.Bootstrap(), b.Auth())
	return cl, reachAdvice(b.Record, err)
}

// Status is the report of `kafkaup status`.
type Status struct {
	Name      string                   `json:"name"`
	Host      string                   `json:"host"`
	Bootstrap string                   `json:"bootstrap"`
	Security  string                   `json:"security"`
	Healthy   bool                     `json:"healthy"`
	Problems  []string                 `json:"problems,omitempty"`
	Reachable bool                     `json:"reachable"`
	Cluster   *kafkaclient.ClusterInfo `json:"cluster,omitempty"`
	OnHost    *provision.HostStatus    `json:"on_host,omitempty"`
	// A cluster of several nodes: each node, the metadata quorum and the
	// partitions that are not fully replicated.
	Nodes       []NodeStatus                 `json:"nodes,omitempty"`
	Quorum      *kafkaclient.Quorum          `json:"quorum,omitempty"`
	Partitions  *kafkaclient.PartitionHealth `json:"partitions,omitempty"`
	CheckedTook string                       `json:"checked_in"`
}

// UnhealthyError says status found problems (exit status 1).
type UnhealthyError struct{ Name string }

func (e *UnhealthyError) Error() string { return e.Name + " is unhealthy" }

// StatusOptions is `kafkaup status NAME`.
type StatusOptions struct {
	Name string
	Dial DialOptions
}

// GetStatus checks the broker on its host (over SSH) and from here (over
// the Kafka protocol), and lists every problem found; on a cluster of
// several nodes, every node at once (clusterStatus). The error is an
// UnhealthyError when there are problems.
func GetStatus(ctx context.Context, env Env, o StatusOptions) (*Status, error) {
	b, err := Open(env, o.Name, 0)
	if err != nil {
		return nil, err
	}
	if len(b.Record.Nodes) > 1 {
		return clusterStatus(ctx, env, b, o)
	}
	start := time.Now()
	st := &Status{Name: b.Name(), Host: b.Node().Host, Bootstrap: b.Bootstrap(), Security: b.Auth().String()}
	if host, err := b.Dial(ctx, env, o.Dial); err != nil {
		st.Problems = append(st.Problems, "cannot log in to the host: "+err.Error())
	} else {
		st.OnHost, err = provision.StatusOnHost(ctx, host, b.Spec)
		host.Close()
		if err != nil {
			st.Problems = append(st.Problems, err.Error())
		} else if !st.OnHost.Running() {
			st.Problems = append(st.Problems, fmt.Sprintf("the broker is not running on the host (service %s); start it with kafkaup broker start %s", st.OnHost.ServiceState, b.Name()))
		}
	}
	if st.Cluster, err = clusterInfo(ctx, b); err != nil {
		st.Problems = append(st.Problems, err.Error())
	} else {
		st.Reachable = true
		for _, br := range st.Cluster.Brokers {
			if want := provision.BrokerAddr(b.Node().AdvertisedHost, b.Spec.BrokerPort); br.ID == int32(b.Node().ID) && br.Addr != want {
				st.Problems = append(st.Problems, fmt.Sprintf("the broker advertises %s but kafkaup expects %s: run kafkaup reprovision %s", br.Addr, want, b.Name()))
			}
		}
	}
	st.Healthy = len(st.Problems) == 0
	st.CheckedTook = time.Since(start).Round(time.Millisecond).String()
	if !st.Healthy {
		return st, &UnhealthyError{Name: b.Name()}
	}
	return st, nil
}

func clusterInfo(ctx context.Context, b *Broker) (*kafkaclient.ClusterInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := b.Kafka(ctx)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return cl.Cluster(ctx)
}

// MetricsEndpoints are where Prometheus scrapes a cluster, and a ready
// scrape_configs snippet.
type MetricsEndpoints struct {
	URLs         []string `json:"urls"`
	ScrapeConfig string   `json:"scrape_config"`
}

// Metrics says where cluster name serves its metrics; it is an input error
// when metrics are off.
func Metrics(env Env, name string) (*MetricsEndpoints, error) {
	b, err := Open(env, name, 0)
	if err != nil {
		return nil, err
	}
	if !b.Spec.Metrics.Enabled {
		return nil, provision.Inputf("%s does not serve metrics: turn them on with kafkaup reprovision %s --metrics", name, name)
	}
	out := &MetricsEndpoints{}
	var hosts []string
	for _, n := range b.Record.Nodes {
		out.URLs = append(out.URLs, b.Spec.MetricsURL(n.AdvertisedHost))
		hosts = append(hosts, n.AdvertisedHost)
	}
	out.ScrapeConfig = b.Spec.ScrapeConfig("kafkaup-"+name, hosts)
	return out, nil
}
