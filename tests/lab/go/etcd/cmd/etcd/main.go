// Command etcd is the upstream etcd server CLI (go.etcd.io/etcd/server/v3/etcdmain), built
// from the version pinned in tests/versions.env for the meshguard.egress lab cluster.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
