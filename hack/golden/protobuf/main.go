// Command protobuf prints, as hex, the protobuf bodies the generic apiserver's
// codec factory writes for fixed metrics objects and a Status, then the
// discovery documents its discovery handlers write (discovery.go). The Rust
// unit tests in crates/api/src/protobuf.rs and crates/api/src/discovery.rs
// compare their output with these lines.
//
// Regenerate: cd hack/golden/protobuf && go run . > ../../../crates/api/src/protobuf_golden.txt
package main

import (
	"bytes"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

func usage(nanocores, memBytes int64) corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewScaledQuantity(nanocores, -9),
		corev1.ResourceMemory: *resource.NewQuantity(memBytes, resource.BinarySI),
	}
}

func main() {
	scheme := runtime.NewScheme()
	if err := v1beta1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	metav1.AddToGroupVersion(scheme, schema.GroupVersion{Version: "v1"})
	codecs := serializer.NewCodecFactory(scheme)
	info, ok := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), runtime.ContentTypeProtobuf)
	if !ok {
		panic("no protobuf serializer")
	}
	created := metav1.NewTime(time.Unix(1785837605, 123456789))
	sample := metav1.NewTime(time.Unix(1785837598, 250000000))
	window := metav1.Duration{Duration: 15004 * time.Millisecond}
	nodes := &v1beta1.NodeMetricsList{Items: []v1beta1.NodeMetrics{
		{
			ObjectMeta: metav1.ObjectMeta{Name: "node1", Labels: map[string]string{"kubernetes.io/os": "linux", "a": "b"}, CreationTimestamp: created},
			Timestamp:  sample, Window: window, Usage: usage(123456789, 2147483648),
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "node2", CreationTimestamp: created},
			Timestamp:  sample, Window: window, Usage: usage(0, 1000),
		},
	}}
	pod := &v1beta1.PodMetrics{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "default", Labels: map[string]string{"app": "web"}, CreationTimestamp: created},
		Timestamp:  sample, Window: window,
		Containers: []v1beta1.ContainerMetrics{
			{Name: "app", Usage: usage(7338891, 12533760)},
			{Name: "sidecar", Usage: usage(1500000, 3145728)},
		},
	}
	pods := &v1beta1.PodMetricsList{Items: []v1beta1.PodMetrics{*pod}}
	status := apierrors.NewNotFound(schema.GroupResource{Group: "metrics.k8s.io", Resource: "nodemetrics"}, "ghost").ErrStatus
	for _, c := range []struct {
		name string
		gv   schema.GroupVersion
		obj  runtime.Object
	}{
		{"node_list", v1beta1.SchemeGroupVersion, nodes},
		{"pod", v1beta1.SchemeGroupVersion, pod},
		{"pod_list", v1beta1.SchemeGroupVersion, pods},
		{"status", schema.GroupVersion{Version: "v1"}, &status},
	} {
		var buf bytes.Buffer
		if err := codecs.EncoderForVersion(info.Serializer, c.gv).Encode(c.obj, &buf); err != nil {
			fmt.Fprintln(os.Stderr, c.name, err)
			os.Exit(1)
		}
		fmt.Printf("%s %x\n", c.name, buf.Bytes())
	}
	printDiscovery(codecs)
}
