// The pin of the Vertical Pod Autoscaler whose recommender the local cluster can run. Its own go.mod has
// an exclude block, which `go install` refuses, so hack/build-tools.sh builds pkg/recommender inside the
// module source that `go mod download` fetches for this requirement.
module metrics-server-rs/hack/tools/vpa

go 1.26.0

require k8s.io/autoscaler/vertical-pod-autoscaler v1.7.1
