// Command etcd runs the etcd server from the pinned go.etcd.io/etcd/server/v3 module.
// etcd's own main package lives in a module with local replace directives, so it
// cannot be built by version; etcdmain.Main is the same entry point it calls.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
