package main

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"

	apidiscoveryv2 "k8s.io/api/apidiscovery/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apiserver/pkg/endpoints/discovery"
	"k8s.io/apiserver/pkg/endpoints/discovery/aggregated"
)

// The address our golden discovery documents advertise in serverAddressByClientCIDRs.
const serverAddress = "127.0.0.1:4443"

const (
	protobufFirst   = "application/vnd.kubernetes.protobuf, */*"
	aggregatedProto = "application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
	aggregatedYAML  = "application/yaml;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
)

var (
	gvV1   = schema.GroupVersion{Group: "metrics.k8s.io", Version: "v1"}
	gvBeta = schema.GroupVersion{Group: "metrics.k8s.io", Version: "v1beta1"}
)

// resources is what the installer lists for metrics-server's two REST storages.
func resources() []metav1.APIResource {
	verbs := metav1.Verbs{"get", "list"}
	return []metav1.APIResource{
		{Name: "nodes", Namespaced: false, Kind: "NodeMetrics", Verbs: verbs},
		{Name: "pods", Namespaced: true, Kind: "PodMetrics", Verbs: verbs},
	}
}

func aggregatedResources() []apidiscoveryv2.APIResourceDiscovery {
	verbs := []string{"get", "list"}
	return []apidiscoveryv2.APIResourceDiscovery{
		{Resource: "nodes", ResponseKind: &metav1.GroupVersionKind{Kind: "NodeMetrics"}, Scope: apidiscoveryv2.ScopeCluster, Verbs: verbs},
		{Resource: "pods", ResponseKind: &metav1.GroupVersionKind{Kind: "PodMetrics"}, Scope: apidiscoveryv2.ScopeNamespace, Verbs: verbs},
	}
}

// apiGroup is the group as genericapiserver.InstallAPIGroups builds it, preferred version first.
func apiGroup(servedVersions []schema.GroupVersion) metav1.APIGroup {
	var versions []metav1.GroupVersionForDiscovery
	for _, gv := range servedVersions {
		versions = append(versions, metav1.GroupVersionForDiscovery{GroupVersion: gv.String(), Version: gv.Version})
	}
	return metav1.APIGroup{Name: servedVersions[0].Group, Versions: versions, PreferredVersion: versions[0]}
}

// serve prints the status, Content-Type, ETag and body (hex) the handler writes for accept.
func serve(name string, h http.Handler, accept string) {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.RemoteAddr = "127.0.0.1:50000"
	req.Header.Set("Accept", accept)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	fmt.Printf("%s.status %d\n", name, rec.Code)
	fmt.Printf("%s.content-type %s\n", name, rec.Header().Get("Content-Type"))
	if etag := rec.Header().Get("ETag"); etag != "" {
		fmt.Printf("%s.etag %s\n", name, etag)
	}
	fmt.Printf("%s %s\n", name, hex.EncodeToString(rec.Body.Bytes()))
}

// printDiscovery serves our discovery documents, both versions served, through the generic
// apiserver's own discovery handlers with metrics-server's codec factory, protobuf-first and as
// YAML; then the root, group and aggregated documents of a server of v1beta1 only.
func printDiscovery(codecs serializer.CodecFactory) {
	apis, group := discoveryHandlers(codecs, []schema.GroupVersion{gvV1, gvBeta})
	lister := discovery.APIResourceListerFunc(resources)
	for _, c := range []struct {
		name string
		h    http.Handler
	}{
		{"discovery_apis", apis},
		{"discovery_group", group},
		{"discovery_resources_v1", discovery.NewAPIVersionHandler(codecs, gvV1, lister)},
		{"discovery_resources_v1beta1", discovery.NewAPIVersionHandler(codecs, gvBeta, lister)},
	} {
		serve(c.name, c.h, protobufFirst)
		serve(c.name+"_yaml", c.h, "application/yaml")
	}
	serve("discovery_aggregated", apis, aggregatedProto)
	serve("discovery_aggregated_yaml", apis, aggregatedYAML)
	apis, group = discoveryHandlers(codecs, []schema.GroupVersion{gvBeta})
	serve("discovery_beta_apis", apis, protobufFirst)
	serve("discovery_beta_apis_yaml", apis, "application/yaml")
	serve("discovery_beta_group", group, protobufFirst)
	serve("discovery_beta_group_yaml", group, "application/yaml")
	serve("discovery_beta_aggregated", apis, aggregatedProto)
	serve("discovery_beta_aggregated_yaml", apis, aggregatedYAML)
}

// discoveryHandlers returns the /apis handler (legacy and aggregated) and the group handler of a
// server of servedVersions.
func discoveryHandlers(codecs serializer.CodecFactory, servedVersions []schema.GroupVersion) (http.Handler, http.Handler) {
	root := discovery.NewRootAPIsHandler(discovery.DefaultAddresses{DefaultAddress: serverAddress}, codecs)
	root.AddGroup(apiGroup(servedVersions))
	agg := aggregated.NewResourceManager("apis")
	for _, gv := range servedVersions {
		agg.AddGroupVersion(gv.Group, apidiscoveryv2.APIVersionDiscovery{
			Version:   gv.Version,
			Resources: aggregatedResources(),
			Freshness: apidiscoveryv2.DiscoveryFreshnessCurrent,
		})
	}
	apis := aggregated.WrapAggregatedDiscoveryToHandler(root, agg, nil)
	return apis, discovery.NewAPIGroupHandler(codecs, apiGroup(servedVersions))
}
