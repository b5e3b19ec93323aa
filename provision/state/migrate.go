package state

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/kafkaup/kafkaup/provision/security"
)

// decode reads a record of any format kafkaup has written.
func decode(data []byte) (Cluster, error) {
	var head struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Cluster{}, err
	}
	switch {
	case head.Format == 0:
		var old brokerV1
		if err := json.Unmarshal(data, &old); err != nil {
			return Cluster{}, err
		}
		return old.migrate(), nil
	case head.Format > Format:
		return Cluster{}, fmt.Errorf("it was written by a newer kafkaup (record format %d, this one reads up to %d): upgrade kafkaup", head.Format, Format)
	}
	var c Cluster
	err := json.Unmarshal(data, &c)
	return c, err
}

// brokerV1 is the record of one broker as kafkaup wrote it before clusters
// (no "format" field).
type brokerV1 struct {
	Name string `json:"name"`

	Host     string `json:"host"`
	Port     int    `json:"port"`
	User     string `json:"user"`
	Identity string `json:"identity,omitempty"`

	AdvertisedHost string `json:"advertised_host"`
	BrokerPort     int    `json:"broker_port"`

	KafkaVersion string `json:"kafka_version"`
	KafkaURL     string `json:"kafka_url,omitempty"`
	KafkaSHA512  string `json:"kafka_sha512,omitempty"`
	Heap         string `json:"heap"`
	Swap         string `json:"swap"`
	DataDir      string `json:"data_dir"`
	TLS          bool   `json:"tls,omitempty"`
	Auth         string `json:"auth,omitempty"`

	ClusterID string `json:"cluster_id,omitempty"`
	Systemd   bool   `json:"systemd"`

	EC2 *struct {
		Region          string `json:"region"`
		InstanceID      string `json:"instance_id,omitempty"`
		AddressKind     string `json:"address_kind,omitempty"`
		EIPAllocationID string `json:"eip_allocation_id,omitempty"`
	} `json:"ec2,omitempty"`

	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// migrate turns a one-broker record into a cluster of one node (node.id 1,
// which is what that release formatted).
func (b brokerV1) migrate() Cluster {
	c := Cluster{
		Format: Format, Name: b.Name, ClusterID: b.ClusterID, Created: b.Created, Updated: b.Updated,
		Spec: SharedSpec{KafkaVersion: b.KafkaVersion, KafkaURL: b.KafkaURL, KafkaSHA512: b.KafkaSHA512,
			Heap: b.Heap, Swap: b.Swap, DataDir: b.DataDir, BrokerPort: b.BrokerPort,
			Security: security.Mode{TLS: b.TLS, SCRAM: b.Auth == security.AuthSCRAM}},
		Nodes: []Node{{ID: 1, Host: b.Host, Port: b.Port, User: b.User, Identity: b.Identity,
			AdvertisedHost: b.AdvertisedHost, Systemd: b.Systemd}},
	}
	if b.EC2 != nil {
		c.EC2 = &EC2{Region: b.EC2.Region, AddressKind: b.EC2.AddressKind}
		c.Nodes[0].InstanceID = b.EC2.InstanceID
		c.Nodes[0].EIPAllocationID = b.EC2.EIPAllocationID
	}
	return c
}
