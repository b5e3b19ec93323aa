package workflow

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/kafkaup/kafkaup/provision/kafkaclient"
)

// Finalize is what the roll did about the cluster's metadata.version
// after an upgrade.
type Finalize struct {
	From     string `json:"from"` // the finalized level before, as Kafka names it
	To       string `json:"to"`   // after
	Finalize bool   `json:"finalized"`
	Message  string `json:"message"`
}

// finalizeDecision decides whether to raise metadata.version after a roll
// to version: only when every node runs version (versions: node id ->
// the Kafka version it runs) and every broker answered with what it
// supports; then to the newest level all of them support, if that is
// above the finalized one. An error means finalizing must wait.
func finalizeDecision(version string, versions map[int]string, mv *kafkaclient.MetadataVersion) (level int16, f Finalize, err error) {
	f.From, f.To = kafkaclient.MetadataVersionName(mv.Finalized), kafkaclient.MetadataVersionName(mv.Finalized)
	var behind []string
	for id, v := range versions {
		if v != version {
			behind = append(behind, fmt.Sprintf("node %d runs %s", id, orUnknown(v)))
		}
	}
	slices.Sort(behind)
	if len(behind) > 0 {
		return 0, f, fmt.Errorf("metadata.version stays at %s: not every node runs Kafka %s (%s)", f.From, version, strings.Join(behind, ", "))
	}
	if len(mv.Supported) < len(versions) {
		return 0, f, fmt.Errorf("metadata.version stays at %s: only %d of %d brokers answered with the versions they support", f.From, len(mv.Supported), len(versions))
	}
	newest := mv.Newest()
	if newest <= mv.Finalized {
		f.Message = fmt.Sprintf("metadata.version is already at %s, the newest every node running Kafka %s supports: nothing to finalize", f.From, version)
		return 0, f, nil
	}
	f.To, f.Finalize = kafkaclient.MetadataVersionName(newest), true
	f.Message = fmt.Sprintf("metadata.version finalized from %s to %s, the newest every node running Kafka %s supports (a downgrade below it is no longer possible)", f.From, f.To, version)
	return newest, f, nil
}

func orUnknown(v string) string {
	if v == "" {
		return "an unknown version"
	}
	return v
}

// finalizeMetadata runs finalizeDecision on the live cluster and acts on it.
func finalizeMetadata(ctx context.Context, cl RollClient, version string, versions map[int]string) (*Finalize, error) {
	mv, err := cl.MetadataVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("read metadata.version before finalizing: %w", err)
	}
	level, f, err := finalizeDecision(version, versions, mv)
	if err != nil || !f.Finalize {
		return &f, err
	}
	if err := cl.FinalizeMetadataVersion(ctx, level); err != nil {
		return &f, err
	}
	return &f, nil
}
