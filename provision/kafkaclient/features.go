package kafkaclient

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// MetadataVersionFeature is the feature a KRaft cluster's metadata format
// is versioned by; it is raised ("finalized") once every node runs a
// release that supports the higher level.
const MetadataVersionFeature = "metadata.version"

// MetadataVersion is where the cluster's metadata.version stands: the
// finalized level and the highest level each broker supports, as each
// answers ApiVersions.
type MetadataVersion struct {
	Finalized int16           `json:"finalized"`
	Supported map[int32]int16 `json:"supported"` // broker id -> highest supported level
}

// Newest is the highest level every broker supports (0 when none answered).
func (m *MetadataVersion) Newest() int16 {
	var low int16
	first := true
	for _, v := range m.Supported {
		if first || v < low {
			low, first = v, false
		}
	}
	return low
}

// MetadataVersionName is a level as Kafka's tools print it (4.0-IV3), for
// the levels Kafka 3.x and 4.0 know; others print as their number.
func MetadataVersionName(level int16) string {
	names := map[int16]string{
		7: "3.3-IV3", 8: "3.4-IV0", 9: "3.5-IV0", 10: "3.5-IV1", 11: "3.5-IV2",
		12: "3.6-IV0", 13: "3.6-IV1", 14: "3.6-IV2", 15: "3.7-IV0", 16: "3.7-IV1", 17: "3.7-IV2", 18: "3.7-IV3", 19: "3.7-IV4",
		20: "3.8-IV0", 21: "3.9-IV0", 22: "4.0-IV0", 23: "4.0-IV1", 24: "4.0-IV2", 25: "4.0-IV3",
	}
	if n, ok := names[level]; ok {
		return n
	}
	return "level " + strconv.Itoa(int(level))
}

// MetadataVersion asks every registered broker for its ApiVersions and
// reads the finalized and supported metadata.version from the answers.
// A broker that does not answer is an error: finalizing must wait for it.
func (c *Client) MetadataVersion(ctx context.Context) (*MetadataVersion, error) {
	meta, err := c.metadata(ctx, []string{})
	if err != nil {
		return nil, fmt.Errorf("ask %s for its brokers: %w", c.bootstrap, err)
	}
	mv := &MetadataVersion{Finalized: -1, Supported: map[int32]int16{}}
	ids := make([]int32, 0, len(meta.Brokers))
	for _, b := range meta.Brokers {
		ids = append(ids, b.NodeID)
	}
	slices.Sort(ids)
	for _, id := range ids {
		req := kmsg.NewPtrApiVersionsRequest()
		// v3+ requires a client software name and version (KIP-511).
		req.ClientSoftwareName, req.ClientSoftwareVersion = "kafkaup", "1"
		// RetriableRequest: a connection kept from before a broker restarted
		// ends in EOF on first use; kgo redials and asks again.
		resp, err := c.cl.Broker(int(id)).RetriableRequest(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("ask broker %d for its API versions: %w", id, err)
		}
		av := resp.(*kmsg.ApiVersionsResponse)
		if err := kerr.ErrorForCode(av.ErrorCode); err != nil {
			return nil, fmt.Errorf("broker %d's API versions: %w", id, err)
		}
		for _, f := range av.SupportedFeatures {
			if f.Name == MetadataVersionFeature {
				mv.Supported[id] = f.MaxVersion
			}
		}
		if _, ok := mv.Supported[id]; !ok {
			return nil, fmt.Errorf("broker %d does not report a supported %s (a broker older than KRaft?)", id, MetadataVersionFeature)
		}
		for _, f := range av.FinalizedFeatures {
			if f.Name == MetadataVersionFeature && f.MaxVersionLevel > mv.Finalized {
				mv.Finalized = f.MaxVersionLevel
			}
		}
	}
	return mv, nil
}

// FinalizeMetadataVersion raises the cluster's metadata.version to level
// (an upgrade only: the controller refuses a downgrade).
func (c *Client) FinalizeMetadataVersion(ctx context.Context, level int16) error {
	res, err := c.adm.UpdateFeatures(ctx, false, kadm.FeatureUpdate{Feature: MetadataVersionFeature, MaxVersionLevel: level, UpgradeType: 1})
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		return fmt.Errorf("finalize %s at %s on %s: %w", MetadataVersionFeature, MetadataVersionName(level), c.bootstrap, err)
	}
	return nil
}
