// Tools module: the reference CNI plugins (bridge, ptp, host-local, loopback)
// that the Plexus CNI plugin is chained under in tests and the lab. Built by
// hack/build-cniplugins.sh; kept out of the product's go.mod.
module github.com/plexus-net/plexus/hack/cniplugins

go 1.26.0

require github.com/containernetworking/plugins v1.9.1

require golang.org/x/sys v0.35.0 // indirect
