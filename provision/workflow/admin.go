package workflow

import (
	"context"
	"time"

	"github.com/kafkaup/kafkaup/provision/kafkaclient"
)

// ClusterAdmin is what the cluster workflows (status, node replace) ask of
// a cluster over the Kafka protocol; *kafkaclient.Client has it.
type ClusterAdmin interface {
	ClusterView
	AddVoter(ctx context.Context, id int32, directoryID string, ep kafkaclient.ControllerEndpoint) error
	RemoveVoter(ctx context.Context, id int32, directoryID string) error
	Close()
}

func (e Env) admin() func(context.Context, string, kafkaclient.Auth) (ClusterAdmin, error) {
	if e.Admin != nil {
		return e.Admin
	}
	return func(ctx context.Context, bootstrap string, auth kafkaclient.Auth) (ClusterAdmin, error) {
		cl, err := kafkaclient.DialWith(ctx, bootstrap, auth)
		if err != nil {
			return nil, err
		}
		return cl, nil
	}
}

// adminDialTimeout bounds connecting to a cluster: one reachable node is
// enough, and a dead one must not hold status up.
const adminDialTimeout = 30 * time.Second

// openAdmin connects to b's cluster with its security settings.
func openAdmin(ctx context.Context, env Env, b *Broker) (ClusterAdmin, error) {
	if err := b.Sec.Check(b.Name()); err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, adminDialTimeout)
	defer cancel()
	a, err := env.admin()(dctx, b.Bootstrap(), b.Auth())
	return a, reachAdvice(b.Record, err)
}
