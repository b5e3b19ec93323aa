package cloud

import "errors"

// TEMPORARY until helper-cloud merges.
func ResourceName(n string) string { return resourceName(n) }

func IngressPorts(CreateRequest) []int32 { return []int32{22, KafkaPort} }

var ErrNoAllowedCIDR = errors.New("allow at least one CIDR")

type RequestError struct{ Err error }

func (e *RequestError) Error() string { return e.Err.Error() }

func (c *Cloud) RegionName() string { return c.Region }
