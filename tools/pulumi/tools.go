//go:build tools

// Pins the Pulumi CLI so scripts/bootstrap can build it with `go build` from
// the Go module proxy: no Pulumi download site is reachable on our build hosts.
package tools

import (
	_ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
)
