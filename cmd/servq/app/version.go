package app

import "github.com/prometheus/common/version"

// servq's build information lives in prometheus/common/version, as in every
// Prometheus exporter, so servq_build_info and --version carry the same
// fields (version, revision, branch, build user and date, go version,
// platform, tags). Release builds set them with
//
//	-ldflags "-X github.com/prometheus/common/version.Version=1.2.3
//	          -X github.com/prometheus/common/version.Revision=<commit>
//	          -X github.com/prometheus/common/version.Branch=<branch> ..."
//
// Without them, the revision (with "-modified" for a dirty tree) and the
// build tags come from the VCS stamp Go writes into binaries built in a
// git checkout (debug.ReadBuildInfo).
const devVersion = "0.1.0-dev"

func init() {
	if version.Version == "" {
		version.Version = devVersion
	}
}

// Version is servq's version string.
func Version() string { return version.Version }
