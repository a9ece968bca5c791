package config

import "gopkg.in/yaml.v3"

// WithSpec returns a copy of c whose plugin section has key set to value
// (replacing any value the file gave), for a command that runs a source
// differently once: `servq backfill` sets an API source's `since` to the
// start of the range it replays. c itself is unchanged.
func (c *Collector) WithSpec(key, value string) *Collector {
	cp := *c
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if c.spec != nil {
		*n = *c.spec
		n.Content = nil
		for i := 0; i+1 < len(c.spec.Content); i += 2 {
			if c.spec.Content[i].Value != key {
				n.Content = append(n.Content, c.spec.Content[i], c.spec.Content[i+1])
			}
		}
	}
	n.Content = append(n.Content,
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key},
		&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value})
	cp.spec = n
	return &cp
}
