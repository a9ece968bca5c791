// Package sources holds the source plugins, one file per type, each
// registering itself in init with collectors.Register.
package sources
