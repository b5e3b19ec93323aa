package kafkaclient

import (
	"fmt"
	"strings"
)

// NoTopicError says a topic named on the command line does not exist.
type NoTopicError struct {
	Topic string
	// Hint is the advice after the semicolon; empty means the default
	// ("kafkaup topics list shows what exists").
	Hint string
}

func (e *NoTopicError) Error() string {
	hint := e.Hint
	if hint == "" {
		hint = "kafkaup topics list shows what exists"
	}
	return fmt.Sprintf("no topic named %s; %s", e.Topic, hint)
}

// TopicExistsError says a topic to create is already there.
type TopicExistsError struct {
	Topic string
}

func (e *TopicExistsError) Error() string {
	return fmt.Sprintf("topic %s already exists; see kafkaup topics describe %s", e.Topic, e.Topic)
}

// InvalidTopicNameError says a name breaks Kafka's topic naming rules.
type InvalidTopicNameError struct {
	Name   string
	Reason string
}

func (e *InvalidTopicNameError) Error() string {
	return fmt.Sprintf("invalid topic name %s: %s", quoteShort(e.Name), e.Reason)
}

// ReplicationFactorError says a topic asks for more replicas than the
// cluster has brokers. It is returned before anything is sent to the broker.
type ReplicationFactorError struct {
	ReplicationFactor int16
	Brokers           int
}

func (e *ReplicationFactorError) Error() string {
	return fmt.Sprintf("replication factor %d needs at least %d brokers; this cluster has %d: use --replication-factor %d",
		e.ReplicationFactor, e.ReplicationFactor, e.Brokers, max(e.Brokers, 1))
}

// ConfigError says the broker refused a topic config: an unknown name or a
// bad value.
type ConfigError struct {
	Topic string
	Name  string // the config the broker's message names; "" when it names none we sent
	Value string
	// Message is the broker's own explanation.
	Message string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.Name != "" {
		fmt.Fprintf(&b, "topic %s not created: the broker refused config %s=%s", e.Topic, e.Name, e.Value)
	} else {
		fmt.Fprintf(&b, "topic %s not created: the broker refused its configs", e.Topic)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, " (%s)", e.Message)
	}
	if strings.Contains(strings.ToLower(e.Message), "unknown") {
		b.WriteString("; valid topic configs are listed at https://kafka.apache.org/documentation/#topicconfigs")
	}
	return b.String()
}

// AdvertisedError says the broker answers at the bootstrap address but hands
// clients an address (advertised.listeners) that is not reachable from here.
type AdvertisedError struct {
	Bootstrap  string
	Advertised string
	Err        error // the *UnreachableError for Advertised
}

func (e *AdvertisedError) Error() string {
	return fmt.Sprintf("the broker answers at %s but tells clients to use %s, which is not reachable from here: "+
		"set --advertised-host to the address clients use, or run kafkaup reprovision if the instance's address changed (%v)",
		e.Bootstrap, e.Advertised, e.Err)
}

func (e *AdvertisedError) Unwrap() error { return e.Err }

// quoteShort quotes s, eliding the middle of very long strings.
func quoteShort(s string) string {
	if len(s) > 60 {
		return fmt.Sprintf("%q (%d characters)", s[:28]+"..."+s[len(s)-28:], len(s))
	}
	return fmt.Sprintf("%q", s)
}

// UnknownGroupError says a consumer group named on the command line does
// not exist. Kafka has no "create group": a group exists once a consumer has
// joined it or offsets were committed for it, and it is gone (state Dead)
// once it has neither members nor offsets.
type UnknownGroupError struct {
	Group string
}

func (e *UnknownGroupError) Error() string {
	return fmt.Sprintf("no consumer group named %s; kafkaup groups list shows what exists (a group exists once a consumer has joined it or committed offsets in it)", e.Group)
}

// GroupActiveError says a group still has members, so its offsets cannot be
// reset nor the group deleted: the broker refuses both while consumers
// are in the group, and a running consumer would overwrite a reset with
// its next commit anyway.
type GroupActiveError struct {
	Group string
	// Action is what was refused, as a verb phrase: "delete",
	// "reset the offsets of".
	Action string
	// Members are the active members as client-id@host; empty when the
	// broker refused without saying who (a member joined meanwhile).
	Members []string
}

func (e *GroupActiveError) Error() string {
	who := "it has active members"
	if n := len(e.Members); n > 0 {
		shown := e.Members[:min(n, 3)]
		who = fmt.Sprintf("it has %d active member%s (%s", n, plural(n), strings.Join(shown, ", "))
		if n > len(shown) {
			who += fmt.Sprintf(" and %d more", n-len(shown))
		}
		who += ")"
	}
	return fmt.Sprintf("cannot %s consumer group %s: %s; stop its consumers first (kafkaup groups describe %s shows them), then run this again", e.Action, e.Group, who, e.Group)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
